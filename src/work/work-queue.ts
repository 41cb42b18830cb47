/**
 * Durable work: a call to an outside party (Taobao TOP, a supplier) recorded in the same transaction as the
 * decision to make it, then run by a WorkRunner until it is done, parked for an operator, or abandoned.
 */
import type { EntityManager } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import type { Database } from '../persistence/database';
import { ID_LENGTH } from '../persistence/entities/column-types';
import { WorkItemEntity, type WorkItemStatus } from '../persistence/entities/work-item.entity';
import { insertStatement, runStatements, type SqlStatement } from '../persistence/statement-batch';

export type { WorkItemStatus };

export interface EnqueueWorkInput {
  /**
   * Unique per intended effect (e.g. `taobao.send:<order>:<n>`); also the key the handler passes to the outside
   * party, so a re-run after a crash repeats the SAME request. A duplicate key is a no-op.
   */
  readonly idempotencyKey: string;
  /** Items of one order run one at a time, in enqueue order; null for work not tied to an order. */
  readonly orderId: string | null;
  /** Handler name, e.g. 'taobao.send'. */
  readonly kind: string;
  /** Circuit breaker name: 'taobao' or 'supplier:<code>'. */
  readonly upstream: string;
  /** JSON-serializable. Stored as is: personal data here stays in the database, never in errors or logs. */
  readonly payload: unknown;
  /** Earliest start (epoch ms); default now. */
  readonly notBefore?: number;
}

export interface EnqueueResult {
  /** False when an item with this idempotency key already existed (nothing was written). */
  readonly enqueued: boolean;
  readonly id: number;
}

/** A work item as operators and handlers see it (the payload is left out: it may hold personal data). */
export interface WorkItemView {
  readonly id: number;
  readonly idempotencyKey: string;
  readonly orderId: string | null;
  readonly kind: string;
  readonly upstream: string;
  readonly status: WorkItemStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

const MAX_KEY = 191;

/** Input the caller got wrong (empty key, too long); a programming error, thrown. */
export class InvalidWorkError extends Error {
  override readonly name = 'InvalidWorkError';
}

/**
 * Records work inside the caller's transaction (`em` is the transaction's manager). Duplicate idempotency key:
 * nothing is written and `enqueued` is false, even when two transactions race (the unique index decides).
 */
export async function enqueueWork(em: EntityManager, input: EnqueueWorkInput, clock: Clock = systemClock): Promise<EnqueueResult> {
  // One statement on the usual path: INSERT IGNORE, and the unique index on the key decides, even between two
  // racing transactions. Only a repeat reads the existing row's id.
  const [result] = await runStatements(em, [enqueueWorkStatement(em, input, clock)]);
  if (result?.affected === 1) return { enqueued: true, id: result.insertId };
  const existing = await em.findOne(WorkItemEntity, { where: { idempotencyKey: input.idempotencyKey }, select: { id: true } });
  if (!existing) throw new Error('work item neither inserted nor found');
  return { enqueued: false, id: Number(existing.id) };
}

/**
 * The same enqueue as a statement, for a transaction that sends its writes together (statement-batch.ts); a
 * duplicate key leaves the statement with 0 affected rows. Throws InvalidWorkError at once, like enqueueWork.
 */
export function enqueueWorkStatement(em: EntityManager, input: EnqueueWorkInput, clock: Clock = systemClock): SqlStatement {
  validateWork(input);
  const now = clock.now();
  return insertStatement(
    em,
    WorkItemEntity,
    {
      idempotencyKey: input.idempotencyKey,
      orderId: input.orderId,
      kind: input.kind,
      upstream: input.upstream,
      payload: JSON.stringify(input.payload ?? null),
      status: 'pending',
      attempts: 0,
      nextAttemptAt: input.notBefore ?? now,
      leaseOwner: null,
      leaseUntil: null,
      lastError: null,
      createdAt: now,
      updatedAt: now,
    },
    { ignore: true },
  );
}

function validateWork(input: EnqueueWorkInput): void {
  if (input.idempotencyKey === '' || input.idempotencyKey.length > MAX_KEY) {
    throw new InvalidWorkError(`idempotency key must be 1..${MAX_KEY} characters`);
  }
  // Checked here because MySQL's INSERT IGNORE would otherwise truncate silently.
  if (input.kind === '' || input.kind.length > 64) throw new InvalidWorkError('kind must be 1..64 characters');
  if (input.upstream === '' || input.upstream.length > 64) throw new InvalidWorkError('upstream must be 1..64 characters');
  if (input.orderId !== null && (input.orderId === '' || input.orderId.length > ID_LENGTH)) {
    throw new InvalidWorkError(`order id must be 1..${ID_LENGTH} characters or null`);
  }
}


export function toWorkItemView(e: WorkItemEntity): WorkItemView {
  return {
    id: Number(e.id),
    idempotencyKey: e.idempotencyKey,
    orderId: e.orderId,
    kind: e.kind,
    upstream: e.upstream,
    status: e.status,
    attempts: e.attempts,
    nextAttemptAt: e.nextAttemptAt,
    lastError: e.lastError,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

/** One item by id, or undefined. */
export function findWorkItem(db: Database, id: number): Promise<WorkItemView | undefined> {
  return db.read(async (em) => {
    const e = await em.findOne(WorkItemEntity, { where: { id } });
    return e ? toWorkItemView(e) : undefined;
  });
}

/** Error text safe to store and show: personal data masked, bounded length. */
export function safeErrorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const redacted = redactPersonalData(text);
  return redacted.length > 2000 ? `${redacted.slice(0, 2000)}…` : redacted;
}
