/**
 * One way to open the gateway's database: embedded SQLite (better-sqlite3) when no URL is given, MariaDB/MySQL
 * (mysql2) otherwise, the same entities and migrations on both.
 */
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource, QueryResult, type DataSourceOptions, type EntityManager, type Logger as TypeormLogger, type QueryRunner } from 'typeorm';
import { createConnection } from 'mysql2/promise';
import { MIGRATIONS } from '../../migrations';
import { redactPersonalData } from '../domain/personal-data';
import { ALL_ENTITIES } from './entities';
import { GroupCommit } from './group-commit';
import { runStatements, statementResult, type SqlStatement, type StatementResult } from './statement-batch';
import { DatabaseClosedError, InvalidDatabaseUrlError, isDuplicateKeyDriverError, isUniqueViolation, NestedTransactionError } from './errors';

/** The subset of a pino logger we use. */
export interface DatabaseLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface OpenDatabaseOptions {
  /** DATABASE_URL: mysql://user:pass@host:port/db or mariadb://…; absent -> embedded SQLite under dataDir. */
  url?: string;
  dataDir: string;
  logger?: DatabaseLogger;
  /** MySQL connection pool size (default 10). Ignored on SQLite (one connection). */
  poolSize?: number;
  /** Apply pending migrations on open (default true). */
  runMigrations?: boolean;
  /** Statements slower than this are logged (default 1000 ms). */
  slowQueryMs?: number;
}

export type DatabaseKind = 'sqlite' | 'mysql';

export interface Database {
  readonly dataSource: DataSource;
  readonly kind: DatabaseKind;
  /**
   * Runs `fn` in one transaction. MySQL: READ COMMITTED (no gap locks blocking inserts behind a claim query).
   * SQLite: transactions are queued in-process, one at a time, because typeorm's single SQLite connection
   * cannot interleave them. Do not call `transaction`/`read` again inside `fn`: use the `em` given.
   */
  transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T>;
  /**
   * A transaction that needs no reads, in ONE round trip: MySQL gets `START TRANSACTION; …; COMMIT` as one
   * multi-statement query (statement-batch.ts); SQLite runs them in a queued transaction. `build` gets a manager only
   * to build statements with. The first failing statement throws its error and nothing of the batch is kept.
   */
  atomically(build: (em: EntityManager) => readonly SqlStatement[]): Promise<StatementResult[]>;
  /** Runs reads outside a transaction; on SQLite queued like a transaction so they never see one half done. */
  read<T>(fn: (em: EntityManager) => Promise<T>): Promise<T>;
  /** True when the database answers a trivial query within `timeoutMs` (default 2000). */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Waits for work in progress, then closes. Safe to call twice. */
  close(): Promise<void>;
}

export const SQLITE_FILE_NAME = 'ticket-gateway.sqlite';

export interface MysqlTarget {
  host: string;
  port: number;
  username: string;
  password: string | undefined;
  database: string;
}

/** Parses a DATABASE_URL; throws InvalidDatabaseUrlError (without echoing a password) when it is not one. */
export function parseDatabaseUrl(url: string): MysqlTarget {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new InvalidDatabaseUrlError('is not a valid URL');
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new InvalidDatabaseUrlError(`has unsupported scheme "${u.protocol.replace(/:$/, '')}"`);
  }
  if (u.hostname === '') throw new InvalidDatabaseUrlError('has no host');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) throw new InvalidDatabaseUrlError('must name one database in its path');
  const port = u.port === '' ? 3306 : Number(u.port);
  const username = decodeURIComponent(u.username);
  if (username === '') throw new InvalidDatabaseUrlError('has no user name');
  return {
    // URL keeps IPv6 brackets in hostname; the driver wants them off.
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    username,
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    database,
  };
}

/** For logs: where we connected, without the password. */
export function describeTarget(t: MysqlTarget): string {
  return `mysql://${t.username}@${t.host}:${t.port}/${t.database}`;
}

/**
 * typeorm's logger, quiet except for failures and slow statements. Parameters are never logged (they hold
 * mobiles and ID numbers), and driver messages are redacted (a duplicate-key error quotes the value).
 */
class GatewayTypeormLogger implements TypeormLogger {
  constructor(private readonly out: DatabaseLogger | undefined) {}
  logQuery(): void {}
  logQueryError(error: string | Error, query: string): void {
    // A duplicate key is how several paths detect a repeat (notices, nonces, idempotency keys); callers that do
    // not expect one see it thrown and report it themselves.
    if (isUniqueViolation(error) || isDuplicateKeyDriverError(error)) return;
    const message = typeof error === 'string' ? error : error.message;
    this.out?.warn({ err: redactPersonalData(message), sql: truncate(query) }, 'database statement failed');
  }
  logQuerySlow(time: number, query: string): void {
    this.out?.warn({ ms: time, sql: truncate(query) }, 'slow database statement');
  }
  logSchemaBuild(): void {}
  logMigration(message: string): void {
    this.out?.info({ migration: message }, 'database migration');
  }
  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') this.out?.warn({ detail: redactPersonalData(String(message)) }, 'database warning');
  }
}

function truncate(sql: string): string {
  return sql.length > 500 ? `${sql.slice(0, 500)}…` : sql;
}

/** Runs promises one after another; used for SQLite's single connection. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
  drain(): Promise<unknown> {
    return this.tail;
  }
}

/** Opens (and by default migrates) the database. */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  const common = {
    entities: ALL_ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: false, // run below, so what ran can be logged
    synchronize: false,
    logger: new GatewayTypeormLogger(opts.logger),
    maxQueryExecutionTime: opts.slowQueryMs ?? 1000,
  };
  let options: DataSourceOptions;
  let kind: DatabaseKind;
  let where: string;

  if (opts.url === undefined || opts.url.trim() === '') {
    const dir = resolve(opts.dataDir);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, SQLITE_FILE_NAME);
    kind = 'sqlite';
    where = file;
    options = {
      ...common,
      type: 'better-sqlite3',
      database: file,
      enableWAL: true,
      timeout: 5000, // busy_timeout: another process (the migrate CLI) may hold the write lock briefly
      prepareDatabase: (db: { pragma(s: string): unknown }) => {
        db.pragma('journal_mode = WAL');
        // FULL: a commit we acknowledged to Taobao survives a power cut, not only a process crash.
        db.pragma('synchronous = FULL');
      },
    };
  } else {
    const target = parseDatabaseUrl(opts.url);
    kind = 'mysql';
    where = describeTarget(target);
    options = {
      ...common,
      // typeorm reads MariaDB's schema metadata differently; the URL scheme may say mysql:// for either server.
      type: (await isMariaDb(target, where)) ? 'mariadb' : 'mysql',
      host: target.host,
      port: target.port,
      username: target.username,
      password: target.password,
      database: target.database,
      charset: 'utf8mb4_bin',
      poolSize: opts.poolSize ?? 10,
      connectTimeout: 10_000,
      supportBigNumbers: true,
      // mysql2 otherwise captures a stack trace on every query (Error.captureStackTrace): ~7% of the gateway's CPU.
      trace: false,
      // Lets a transaction send its writes in one round trip (statement-batch.ts). Every statement we send is
      // parameterised, so this opens no injection path.
      multipleStatements: true,
      bigNumberStrings: true,
    };
  }

  const dataSource = new DataSource(options);
  try {
    await dataSource.initialize();
  } catch (err) {
    const message = redactPersonalData(err instanceof Error ? err.message : String(err));
    throw new Error(`cannot open the ${kind} database at ${where}: ${message}`, { cause: err });
  }
  const db = new TypeormDatabase(dataSource, kind, opts.poolSize ?? 10);
  try {
    if (opts.runMigrations ?? true) {
      const ran = await runPendingMigrations(db);
      opts.logger?.info({ database: kind, where, migrations: ran }, ran.length ? 'database migrated' : 'database schema up to date');
    }
  } catch (err) {
    await dataSource.destroy().catch(() => undefined);
    throw err;
  }
  return db;
}

/** Asks the server what it is, before typeorm connects; also fails fast, with a clear message, when it is down. */
async function isMariaDb(target: MysqlTarget, where: string): Promise<boolean> {
  let conn: import('mysql2/promise').Connection | undefined;
  try {
    conn = await createConnection({
      host: target.host,
      port: target.port,
      user: target.username,
      password: target.password,
      database: target.database,
      connectTimeout: 10_000,
    });
    const [rows] = await conn.query('SELECT VERSION() AS v');
    return /mariadb/i.test(String((rows as Array<{ v: unknown }>)[0]?.v ?? ''));
  } catch (err) {
    throw new Error(`cannot open the mysql database at ${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    await conn?.end().catch(() => undefined);
  }
}

/** Applies pending migrations, in one transaction where the engine allows; returns the names that ran. */
export async function runPendingMigrations(db: Database): Promise<string[]> {
  const ran = await db.dataSource.runMigrations({ transaction: 'all' });
  return ran.map((m) => m.name);
}

/** Group commits in flight at once, at most (see the constructor of TypeormDatabase). */
const GROUP_COMMITS_AT_ONCE = 3;

class TypeormDatabase implements Database {
  private readonly queue = new SerialQueue();
  // Marks the async context of a running transaction, to refuse nesting instead of deadlocking.
  private readonly scope = new AsyncLocalStorage<{ active: boolean }>();
  private readonly inFlight = new Set<Promise<unknown>>();
  // Pooled mysql2 connections already switched to READ COMMITTED for their whole session.
  private readonly readCommittedConnections = new WeakSet<object>();
  private closed = false;
  private closing: Promise<void> | undefined;

  private readonly groupCommit: GroupCommit;

  constructor(
    readonly dataSource: DataSource,
    readonly kind: DatabaseKind,
    poolSize: number,
  ) {
    // A few read-free transactions in flight at once (the pool's other connections left to everything else): while
    // they commit the next callers gather into bigger groups, each paying one round trip and one commit. Measured
    // (bench section 1, pool of 32, 16 senders): 2-4 at once acknowledged 10-15% more notices than 10.
    this.groupCommit = new GroupCommit({
      run: (st) => this.commitInOneRoundTrip(st),
      maxInFlight: Math.max(1, Math.min(GROUP_COMMITS_AT_ONCE, Math.floor(poolSize / 3))),
      maxStatements: 200,
    });
  }

  transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.guarded(() => (this.kind === 'mysql' ? this.mysqlTransaction(fn) : this.queue.run(() => this.dataSource.transaction(fn))));
  }

  /**
   * READ COMMITTED, set once per pooled connection (SESSION) rather than with a `SET TRANSACTION` before every
   * transaction: one round trip fewer on every write path.
   */
  private async mysqlTransaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await this.readCommitted(runner);
      startWithFirstQuery(runner);
      await runner.startTransaction();
      try {
        const result = await fn(runner.manager);
        await runner.commitTransaction();
        return result;
      } catch (err) {
        await runner.rollbackTransaction().catch(() => undefined);
        throw err;
      }
    } finally {
      await runner.release();
    }
  }

  atomically(build: (em: EntityManager) => readonly SqlStatement[]): Promise<StatementResult[]> {
    if (this.kind !== 'mysql') return this.transaction((em) => runStatements(em, build(em)));
    return this.guarded(async () => this.groupCommit.submit(build(this.dataSource.manager)));
  }

  /** One read-free transaction in one round trip (group-commit.ts merges concurrent ones into a single call). */
  private async commitInOneRoundTrip(statements: readonly SqlStatement[]): Promise<StatementResult[]> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await this.readCommitted(runner);
      const sql = ['START TRANSACTION', ...statements.map((st) => st.sql), 'COMMIT'].join(';\n');
      let raw: unknown[];
      try {
        raw = (await runner.query(sql, statements.flatMap((st) => st.params))) as unknown[];
      } catch (err) {
        // The statements after the failing one, COMMIT included, did not run: end the transaction here.
        await runner.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      return raw.slice(1, -1).map(statementResult);
    } finally {
      await runner.release();
    }
  }

  read<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.guarded(() =>
      this.kind === 'mysql' ? fn(this.dataSource.manager) : this.queue.run(() => fn(this.dataSource.manager)),
    );
  }

  /** Connects the runner, switching a pooled connection it has not seen yet to READ COMMITTED for its session. */
  private async readCommitted(runner: QueryRunner): Promise<void> {
    const connection: object = await runner.connect();
    if (!this.readCommittedConnections.has(connection)) {
      await runner.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
      this.readCommittedConnections.add(connection);
    }
  }

  async ping(timeoutMs = 2000): Promise<boolean> {
    if (this.closed || !this.dataSource.isInitialized) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((res) => {
      timer = setTimeout(() => res(false), timeoutMs);
    });
    try {
      const answer = this.dataSource.query('SELECT 1 AS ok').then(
        () => true,
        () => false,
      );
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      await Promise.allSettled([...this.inFlight]);
      await this.queue.drain();
      if (this.dataSource.isInitialized) await this.dataSource.destroy();
    })();
    return this.closing;
  }

  private guarded<T>(run: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new DatabaseClosedError());
    if (this.scope.getStore()?.active) return Promise.reject(new NestedTransactionError());
    const state = { active: true };
    const work = this.scope.run(state, run).finally(() => {
      // Work the caller spawned from inside may outlive this one; it may open its own transaction later.
      state.active = false;
      this.inFlight.delete(work);
    });
    this.inFlight.add(work);
    return work;
  }
}

/**
 * Sends a transaction's START TRANSACTION together with its first statement (one multi-statement round trip)
 * instead of on its own: on these machines a round trip costs the gateway more CPU than the statements it carries.
 * typeorm's own bookkeeping (transaction depth, subscribers' events) is untouched: only what goes over the wire
 * changes. A transaction that ran no statement sends neither START nor its COMMIT/ROLLBACK.
 */
function startWithFirstQuery(runner: QueryRunner): void {
  const send = runner.query.bind(runner) as (sql: string, params?: unknown[], structured?: boolean) => Promise<any>;
  let startPending = false;
  runner.query = async (sql: string, params?: unknown[], structured?: boolean): Promise<any> => {
    if (sql === 'START TRANSACTION' && (runner as { transactionDepth?: number }).transactionDepth === 0) {
      startPending = true;
      return structured ? new QueryResult() : undefined;
    }
    if (!startPending) return send(sql, params, structured);
    startPending = false;
    if (sql === 'COMMIT' || sql === 'ROLLBACK') return structured ? new QueryResult() : undefined;
    const both: QueryResult = await send(`START TRANSACTION;\n${sql}`, params, true);
    // mysql2 answers with one result per statement: START's, then the statement's own (or, for a multi-statement
    // query, one per statement).
    const results = both.raw as unknown[];
    const raw = results.length === 2 ? results[1] : results.slice(1);
    if (!structured) return raw;
    const result = new QueryResult();
    result.raw = raw;
    if (Array.isArray(raw)) result.records = raw;
    const header = raw as { affectedRows?: number } | undefined;
    if (header !== null && typeof header === 'object' && 'affectedRows' in header) result.affected = header.affectedRows;
    return result;
  };
}
