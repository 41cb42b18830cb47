/**
 * Several statements of one transaction in one round trip.
 *
 * On MariaDB/MySQL every statement costs a socket write, a wake-up of the server and a reply: measured, that is most
 * of the gateway's CPU on its hot paths (a notice ack, a Redeem). Writes whose results the transaction does not need
 * before its next decision are therefore sent together, as one multi-statement query. On SQLite the database is in
 * process, there is no round trip to save, and the statements simply run one after another.
 *
 * Parameters stay parameters: each statement is escaped by the driver exactly as a single query would be, so the
 * multi-statement protocol adds no way to inject SQL.
 */
import type { EntityManager, EntityTarget, ObjectLiteral, ValueTransformer } from 'typeorm';
import type { Database } from './database';

export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

export interface StatementResult {
  /** Rows changed by a write (INSERT IGNORE that was ignored: 0). */
  readonly affected: number;
  /** Auto-increment id a single-row INSERT produced (0 when none). */
  readonly insertId: number;
  /** Rows of a SELECT (empty for writes). */
  readonly rows: ReadonlyArray<Record<string, unknown>>;
}

/** Does this manager talk to the embedded SQLite database? */
export function isSqlite(em: EntityManager): boolean {
  return em.connection.driver.options.type === 'better-sqlite3';
}

/**
 * Runs the statements in order inside the caller's transaction (`em` must be a transaction's manager) and returns
 * one result per statement. The first failing statement throws (the later ones do not run), as if they had been
 * sent one by one; the caller's transaction then rolls back as usual.
 */
export async function runStatements(em: EntityManager, statements: readonly SqlStatement[]): Promise<StatementResult[]> {
  const runner = em.queryRunner;
  if (!runner) throw new Error('runStatements needs the entity manager of a transaction');
  if (statements.length === 0) return [];
  if (isSqlite(em)) {
    const out: StatementResult[] = [];
    for (const s of statements) {
      const r = await runner.query(s.sql, [...s.params], true);
      const rows = Array.isArray(r.raw) ? (r.raw as Array<Record<string, unknown>>) : [];
      out.push({ affected: r.affected ?? 0, insertId: Array.isArray(r.raw) ? 0 : Number(r.raw ?? 0), rows });
    }
    return out;
  }
  const sql = statements.map((s) => s.sql).join(';\n');
  const params = statements.flatMap((s) => s.params);
  const raw: unknown = await runner.query(sql, params);
  // mysql2 answers a multi-statement query with one result per statement, a single statement with its result alone.
  const results = statements.length === 1 ? [raw] : (raw as unknown[]);
  return results.map(statementResult);
}

/** One statement's answer from mysql2: rows for a SELECT, a result header for a write. */
export function statementResult(raw: unknown): StatementResult {
  if (Array.isArray(raw)) return { affected: 0, insertId: 0, rows: raw as Array<Record<string, unknown>> };
  const header = raw as { affectedRows?: number; insertId?: number | string } | undefined;
  return { affected: header?.affectedRows ?? 0, insertId: Number(header?.insertId ?? 0), rows: [] };
}

/**
 * The INSERT for these values as a statement to batch: the entity's own table and column names (typeorm's
 * metadata), the values as parameters. `ignore`: a duplicate key skips the row (INSERT IGNORE / INSERT OR IGNORE)
 * instead of failing. Properties left undefined are left out, so the column's default applies, as with `em.insert`.
 * The SQL text is built once per table and column set: typeorm's query builder costs more CPU than the round trip
 * it would be batched into.
 */
export function insertStatement<E extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<E>,
  values: Partial<E> | ReadonlyArray<Partial<E>>,
  opts: { ignore?: boolean } = {},
): SqlStatement {
  const rows = (Array.isArray(values) ? values : [values]) as ReadonlyArray<Record<string, unknown>>;
  if (rows.length === 0) throw new Error('insertStatement needs at least one row');
  const meta = em.connection.getMetadata(entity);
  const columns = meta.columns.filter((c) => rows[0]![c.propertyName] !== undefined);
  const shape = columns.map((c) => c.propertyName).join(',');
  if (rows.slice(1).some((r) => meta.columns.filter((c) => r[c.propertyName] !== undefined).map((c) => c.propertyName).join(',') !== shape)) {
    throw new Error(`insertStatement: every row for ${meta.tableName} must set the same columns`);
  }
  const sqlite = isSqlite(em);
  const key = `${meta.tableName}|${opts.ignore ? 'i' : ''}|${sqlite ? 's' : 'm'}|${shape}`;
  let head = insertHeads.get(key);
  if (head === undefined) {
    const verb = opts.ignore ? (sqlite ? 'INSERT OR IGNORE INTO' : 'INSERT IGNORE INTO') : 'INSERT INTO';
    head = `${verb} \`${meta.tableName}\` (${columns.map((c) => `\`${c.databaseName}\``).join(', ')}) VALUES `;
    insertHeads.set(key, head);
  }
  const group = `(${columns.map(() => '?').join(', ')})`;
  return {
    sql: head + rows.map(() => group).join(', '),
    params: rows.flatMap((r) => columns.map((c) => toDatabaseValue(c.transformer, r[c.propertyName]))),
  };
}

const insertHeads = new Map<string, string>();

/** A column transformer's `to` (ours are identities, kept for safety); booleans as 1/0, which both drivers bind. */
function toDatabaseValue(transformer: ValueTransformer | ValueTransformer[] | undefined, value: unknown): unknown {
  let v = value;
  for (const t of transformer === undefined ? [] : Array.isArray(transformer) ? transformer : [transformer]) v = t.to(v);
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

/**
 * Single-row INSERTs of one table and column set (insertStatement's `INSERT … VALUES (?, …)`) as one multi-row
 * INSERT: one statement for the server to parse and run instead of one per row, rows kept in order (so are their
 * auto-increment ids). Statements of any other shape are returned as they are.
 */
export function asOneInsert(statements: readonly SqlStatement[]): SqlStatement[] {
  const first = statements[0];
  if (!first || statements.length === 1 || statements.some((st) => st.sql !== first.sql)) return [...statements];
  const at = first.sql.lastIndexOf(' VALUES ');
  const row = first.sql.slice(at + ' VALUES '.length);
  if (!/^INSERT /.test(first.sql) || at < 0 || !/^\(\?(, \?)*\)$/.test(row)) return [...statements];
  return [{ sql: first.sql + `, ${row}`.repeat(statements.length - 1), params: statements.flatMap((st) => st.params) }];
}

/**
 * One statement on its own: autocommit makes it atomic, without the START and COMMIT round trips of a transaction.
 * (On SQLite `read` queues it like a transaction, so it never lands inside another one.)
 */
export function runAlone(db: Database, statement: SqlStatement): Promise<StatementResult> {
  return db.read(async (em) => {
    const runner = em.connection.createQueryRunner();
    try {
      const [result] = await runStatements(runner.manager, [statement]);
      return result!;
    } finally {
      await runner.release();
    }
  });
}
