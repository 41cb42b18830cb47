/**
 * A fresh, migrated database for one test: SQLite in a new temp dir, or a new MariaDB/MySQL database
 * `tg_test_<random>` on the server named by TEST_MYSQL_URL (set by the test harness). `drop()` removes it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { openDatabase, type Database, type DatabaseKind, type OpenDatabaseOptions } from '../../src/persistence/database';

export const DATABASE_KINDS: readonly DatabaseKind[] = ['sqlite', 'mysql'];

export interface TestDatabase {
  db: Database;
  /** Reopens the same database (e.g. to check migrations are idempotent); the caller closes it. */
  reopen(opts?: Partial<OpenDatabaseOptions>): Promise<Database>;
  /** Where it lives: the DATABASE_URL (MySQL) or data dir (SQLite). */
  url: string | undefined;
  dataDir: string;
  /** Closes the database and removes it (temp dir or MySQL database). */
  drop(): Promise<void>;
}

/** The server URL from TEST_MYSQL_URL; a clear failure (never a silent skip) when it is missing. */
export function testMysqlServerUrl(): URL {
  const raw = process.env.TEST_MYSQL_URL;
  if (!raw || raw.trim() === '') {
    throw new Error(
      'TEST_MYSQL_URL is not set: the MariaDB tests need a server, e.g. TEST_MYSQL_URL=mysql://root@127.0.0.1:3391/ ' +
        '(the test harness starts one; toolchain.md shows a throwaway mariadbd)',
    );
  }
  return new URL(raw.trim());
}

export async function openTestDatabase(kind: DatabaseKind, opts: Partial<OpenDatabaseOptions> = {}): Promise<TestDatabase> {
  // Checked first, so a missing server leaves nothing behind.
  const server = kind === 'mysql' ? testMysqlServerUrl() : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-db-test-'));
  if (server === undefined) {
    let db: Database;
    try {
      db = await openDatabase({ dataDir, ...opts });
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
    return {
      db,
      url: undefined,
      dataDir,
      reopen: (more = {}) => openDatabase({ dataDir, ...opts, ...more }),
      async drop() {
        await db.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }

  const name = `tg_test_${randomBytes(6).toString('hex')}`;
  let admin;
  try {
    admin = await connectAdmin(server);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await admin.end();
  }
  const url = new URL(server.href);
  url.pathname = `/${name}`;
  let db: Database;
  try {
    db = await openDatabase({ url: url.href, dataDir, ...opts });
  } catch (err) {
    await dropMysqlDatabase(server, name);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    db,
    url: url.href,
    dataDir,
    reopen: (more = {}) => openDatabase({ url: url.href, dataDir, ...opts, ...more }),
    async drop() {
      await db.close();
      await dropMysqlDatabase(server, name);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function connectAdmin(server: URL) {
  return createConnection({
    host: server.hostname,
    port: server.port === '' ? 3306 : Number(server.port),
    user: decodeURIComponent(server.username),
    password: server.password === '' ? undefined : decodeURIComponent(server.password),
    connectTimeout: 5000,
  });
}

async function dropMysqlDatabase(server: URL, name: string): Promise<void> {
  const admin = await connectAdmin(server);
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await admin.end();
  }
}

/**
 * For one test file: `cleanups` run after its tests (last added first, failures ignored), and `database(kind)` opens
 * a fresh database that is dropped then. Call once, at the top of the file.
 */
export function fileScope(): { readonly cleanups: Array<() => Promise<unknown> | void>; database(kind: DatabaseKind): Promise<TestDatabase> } {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  });
  return {
    cleanups,
    async database(kind) {
      const t = await openTestDatabase(kind);
      cleanups.push(() => t.drop());
      return t;
    },
  };
}
