/**
 * Loads an order as a domain snapshot inside a transaction, applies a pure domain operation, and saves the result
 * — the one way the application changes an order's ledger, state or validity. The row is locked for the rest of the
 * transaction (MySQL `FOR UPDATE`; SQLite transactions are already serialised), and the save also checks the version
 * so a writer that bypassed the lock can never silently overwrite.
 */
import type { EntityManager } from 'typeorm';
import type { Ledger, OrderState } from '../domain/model';
import { OrderState as S } from '../domain/model';
import type { OrderPhase } from '../domain/order-state-machine';
import type { OrderResult, OrderSnapshot } from '../domain/order';
import type { WriteOff } from '../domain/write-off-rules';
import { OrderEntity } from '../persistence/entities/order.entity';
import { WriteOffEntity } from '../persistence/entities/write-off.entity';
import { isSqlite, type SqlStatement } from '../persistence/statement-batch';

export class OrderNotFoundError extends Error {
  constructor(readonly orderId: string) {
    super(`order ${JSON.stringify(orderId)} not found`);
    this.name = 'OrderNotFoundError';
  }
}

/** Another writer changed the row between our read and our write: the transaction must be retried. */
export class OrderConcurrentUpdateError extends Error {
  constructor(readonly orderId: string) {
    super(`order ${orderId} was changed concurrently`);
    this.name = 'OrderConcurrentUpdateError';
  }
}

export function ledgerOf(o: OrderEntity): Ledger {
  return {
    purchased: o.purchased,
    available: o.available,
    consumed: o.consumed,
    refundPending: o.refundPending,
    refunded: o.refunded,
    expired: o.expired,
  };
}

/**
 * The phase is not stored: it follows from the state, except CLOSED, which is 'closed' for an order closed before it
 * was ever issued (no unit moved) and 'issued' for an issued order whose units all ended up consumed/refunded/expired.
 */
export function phaseOf(state: OrderState, ledger: Ledger): OrderPhase {
  switch (state) {
    case S.Received:
      return 'received';
    case S.Issuing:
      return 'issuing';
    case S.IssueFailed:
      return 'issue-failed';
    case S.Closed:
      return ledger.consumed + ledger.refunded + ledger.expired + ledger.refundPending === 0 ? 'closed' : 'issued';
    default:
      return 'issued';
  }
}

export interface LoadedOrder {
  readonly entity: OrderEntity;
  readonly snapshot: OrderSnapshot;
}

/** Loads and locks the order for this transaction. `withWriteOffs` is needed only by reversals and duplicate checks. */
export async function loadOrderForUpdate(
  em: EntityManager,
  orderId: string,
  opts: { withWriteOffs?: boolean } = {},
): Promise<LoadedOrder> {
  const qb = em.getRepository(OrderEntity).createQueryBuilder('o').where('o.id = :orderId', { orderId });
  if (em.connection.driver.options.type !== 'better-sqlite3') qb.setLock('pessimistic_write');
  const entity = await qb.getOne();
  if (!entity) throw new OrderNotFoundError(orderId);
  let writeOffs: WriteOff[] = [];
  if (opts.withWriteOffs) {
    const rows = await em.getRepository(WriteOffEntity).find({ where: { orderId }, order: { admittedAt: 'ASC' } });
    writeOffs = rows
      .filter((w) => w.state !== 'failed' && w.state !== 'conflict')
      .map((w) => ({ serial: w.serialNum, count: w.count, admittedAt: w.admittedAt, reversedAt: w.reversedAt }));
  }
  const ledger = ledgerOf(entity);
  return {
    entity,
    snapshot: {
      state: entity.state,
      phase: phaseOf(entity.state, ledger),
      ledger,
      validity: { start: entity.validStart, end: entity.validEnd },
      writeOffs,
    },
  };
}

/** Writes the snapshot's state, ledger and validity back, bumping the version; throws if the row moved meanwhile. */
export async function saveOrderSnapshot(em: EntityManager, loaded: LoadedOrder, next: OrderSnapshot, now: number): Promise<OrderEntity> {
  const { entity } = loaded;
  const l = next.ledger;
  const result = await em
    .createQueryBuilder()
    .update(OrderEntity)
    .set({
      state: next.state,
      purchased: l.purchased,
      available: l.available,
      consumed: l.consumed,
      refundPending: l.refundPending,
      refunded: l.refunded,
      expired: l.expired,
      validStart: next.validity.start,
      validEnd: next.validity.end,
      version: entity.version + 1,
      updatedAt: now,
    })
    .where('id = :id AND version = :version', { id: entity.id, version: entity.version })
    .execute();
  if (result.affected !== 1) throw new OrderConcurrentUpdateError(entity.id);
  Object.assign(entity, {
    state: next.state,
    ...l,
    validStart: next.validity.start,
    validEnd: next.validity.end,
    version: entity.version + 1,
    updatedAt: now,
  });
  return entity;
}

export type MutateOutcome =
  | { ok: true; before: OrderSnapshot; after: OrderSnapshot; entity: OrderEntity }
  | { ok: false; reason: string; message: string; details?: Record<string, unknown>; before: OrderSnapshot; entity: OrderEntity };

/**
 * Load (locked) -> apply the pure operation -> save, in the caller's transaction. A rejection changes nothing and is
 * returned as a business result; the caller decides what it means (an error answer, an operator exception, ...).
 */
export async function mutateOrder(
  em: EntityManager,
  orderId: string,
  now: number,
  operation: (order: OrderSnapshot) => OrderResult,
  opts: { withWriteOffs?: boolean } = {},
): Promise<MutateOutcome> {
  const loaded = await loadOrderForUpdate(em, orderId, opts);
  const result = operation(loaded.snapshot);
  if (!result.ok) {
    const details = (result as { details?: Record<string, unknown> }).details;
    return { ok: false, reason: result.reason, message: result.message, details, before: loaded.snapshot, entity: loaded.entity };
  }
  const entity = await saveOrderSnapshot(em, loaded, result.value, now);
  return { ok: true, before: loaded.snapshot, after: result.value, entity };
}

/** An order locked by a batched read (lockOrdersStatement): its snapshot (no write-offs) and the version read. */
export interface LockedOrder {
  readonly id: string;
  readonly version: number;
  readonly snapshot: OrderSnapshot;
}

/**
 * Locks these orders and reads what a ledger change needs, as one statement to send with other reads of the same
 * transaction (statement-batch.ts), with fixed SQL (no query builder). The rows are locked in id order, so two
 * transactions locking overlapping sets of orders wait for each other instead of deadlocking. SQLite transactions
 * are serialised already and take no row lock. Turn the rows into orders with lockedOrderOf.
 */
export function lockOrdersStatement(em: EntityManager, orderIds: readonly string[]): SqlStatement {
  const ids = [...new Set(orderIds)];
  if (ids.length === 0) throw new Error('lockOrdersStatement: no order to lock');
  return {
    sql:
      'SELECT id, state, purchased, available, consumed, refund_pending, refunded, expired, valid_start, valid_end, version ' +
      `FROM orders WHERE id IN (${ids.map(() => '?').join(', ')}) ORDER BY id${isSqlite(em) ? '' : ' FOR UPDATE'}`,
    params: ids,
  };
}

/** One row of lockOrdersStatement as a LockedOrder (mysql2 returns BIGINT columns as strings). */
export function lockedOrderOf(row: Readonly<Record<string, unknown>>): LockedOrder {
  const ledger: Ledger = {
    purchased: Number(row['purchased']),
    available: Number(row['available']),
    consumed: Number(row['consumed']),
    refundPending: Number(row['refund_pending']),
    refunded: Number(row['refunded']),
    expired: Number(row['expired']),
  };
  const state = row['state'] as OrderState;
  return {
    id: String(row['id']),
    version: Number(row['version']),
    snapshot: {
      state,
      phase: phaseOf(state, ledger),
      ledger,
      validity: { start: Number(row['valid_start']), end: Number(row['valid_end']) },
      writeOffs: [],
    },
  };
}

/**
 * saveOrderSnapshot as a statement to batch: writes the state, ledger and validity, bumping the version. The caller
 * checks that it changed exactly one row (else OrderConcurrentUpdateError) and otherwise rolls the transaction back.
 */
export function saveOrderStatement(order: LockedOrder, next: OrderSnapshot, now: number): SqlStatement {
  const l = next.ledger;
  return {
    sql:
      'UPDATE orders SET state = ?, purchased = ?, available = ?, consumed = ?, refund_pending = ?, refunded = ?, expired = ?, ' +
      'valid_start = ?, valid_end = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?',
    params: [next.state, l.purchased, l.available, l.consumed, l.refundPending, l.refunded, l.expired, next.validity.start, next.validity.end, order.version + 1, now, order.id, order.version],
  };
}

/** A locked order and the snapshot to save for it. */
export interface OrderSave {
  readonly order: LockedOrder;
  readonly next: OrderSnapshot;
}

/**
 * saveOrderSnapshot for several locked orders as ONE statement to batch (one statement for the server to run instead
 * of one per order): writes each one's state, ledger and validity, bumping its version where it is still the version
 * read. The caller checks with checkOrdersSaved that every order was written, and otherwise rolls back.
 */
export function saveOrdersStatement(saves: readonly OrderSave[], now: number): SqlStatement {
  if (saves.length === 0) throw new Error('saveOrdersStatement: no order to save');
  const whens = saves.map(() => 'WHEN ? THEN ?').join(' ');
  const column = (name: string, value: (s: OrderSave) => unknown) => ({ sql: `${name} = CASE id ${whens} END`, params: saves.flatMap((s) => [s.order.id, value(s)]) });
  const set = [
    column('state', (s) => s.next.state),
    column('purchased', (s) => s.next.ledger.purchased),
    column('available', (s) => s.next.ledger.available),
    column('consumed', (s) => s.next.ledger.consumed),
    column('refund_pending', (s) => s.next.ledger.refundPending),
    column('refunded', (s) => s.next.ledger.refunded),
    column('expired', (s) => s.next.ledger.expired),
    column('valid_start', (s) => s.next.validity.start),
    column('valid_end', (s) => s.next.validity.end),
  ];
  return {
    sql: `UPDATE orders SET ${set.map((c) => c.sql).join(', ')}, version = version + 1, updated_at = ? WHERE ${saves.map(() => '(id = ? AND version = ?)').join(' OR ')}`,
    params: [...set.flatMap((c) => c.params), now, ...saves.flatMap((s) => [s.order.id, s.order.version])],
  };
}

/** Throws OrderConcurrentUpdateError unless saveOrdersStatement wrote every order (a version moved meanwhile). */
export function checkOrdersSaved(saves: readonly OrderSave[], affected: number): void {
  if (affected !== saves.length) throw new OrderConcurrentUpdateError(saves.map((s) => s.order.id).join(', '));
}
