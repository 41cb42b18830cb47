import { QueryFailedError } from 'typeorm';

/** DATABASE_URL is not one we can open. The message names the variable and never repeats a password. */
export class InvalidDatabaseUrlError extends Error {
  constructor(detail: string) {
    super(`DATABASE_URL ${detail}; expected mysql://user:password@host:port/database (or mariadb://…), or leave it unset for the embedded SQLite database`);
    this.name = 'InvalidDatabaseUrlError';
  }
}

/**
 * `db.transaction()` / `db.read()` called from inside a transaction. On SQLite that would wait forever for
 * itself; on MySQL it would silently run outside the caller's transaction. Use the EntityManager you were given.
 */
export class NestedTransactionError extends Error {
  constructor() {
    super('a database transaction was started inside another one; use the EntityManager passed to the outer transaction');
    this.name = 'NestedTransactionError';
  }
}

export class DatabaseClosedError extends Error {
  constructor() {
    super('the database is closed');
    this.name = 'DatabaseClosedError';
  }
}

/** A list page token we did not issue (or that was altered). */
export class InvalidPageTokenError extends Error {
  constructor() {
    super('invalid page token');
    this.name = 'InvalidPageTokenError';
  }
}

/** An order with this Taobao order id is already stored. */
export class DuplicateOrderError extends Error {
  constructor(readonly taobaoOrderId: string) {
    super(`an order for Taobao order ${taobaoOrderId} already exists`);
    this.name = 'DuplicateOrderError';
  }
}

/** True when a statement failed on a unique index or primary key, on either driver. */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof QueryFailedError)) return false;
  return isDuplicateKeyDriverError((err as QueryFailedError & { driverError?: unknown }).driverError);
}

/** The driver's own error (mysql2 or better-sqlite3) for a unique or primary key violation. */
export function isDuplicateKeyDriverError(driverError: unknown): boolean {
  const e = driverError as { code?: unknown; errno?: unknown } | null | undefined;
  const code = e?.code;
  return code === 'ER_DUP_ENTRY' || e?.errno === 1062 || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
