/**
 * Operator actions on durable work: see what is parked, put an item back in the queue, or give up on it.
 * Replay and abandon are conditional updates (checked by affected rows), so they are safe against a runner or
 * another operator acting at the same moment. Both resolve the operator exception the parking raised.
 */
import { In, IsNull, Like, MoreThan, type EntityManager } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { WorkItemEntity, type WorkItemStatus } from '../persistence/entities/work-item.entity';
import { safeErrorText, toWorkItemView, type WorkItemView } from './work-queue';
import { WORK_PARKED_EXCEPTION, workExceptionDetailPrefix } from './work-runner';

export interface ParkedWorkPage {
  readonly items: WorkItemView[];
  /** Absent on the last page. */
  readonly nextPageToken?: string;
}

export type WorkAdminResult =
  | { readonly ok: true; readonly item: WorkItemView }
  | { readonly ok: false; readonly reason: 'not_found' }
  | { readonly ok: false; readonly reason: 'wrong_status'; readonly status: WorkItemStatus };

/** A page token this service did not issue. */
export class InvalidWorkPageTokenError extends Error {
  override readonly name = 'InvalidWorkPageTokenError';
  constructor() {
    super('page token is not one this service issued');
  }
}

export const MAX_PARKED_PAGE_SIZE = 500;
const DEFAULT_PAGE_SIZE = 50;
/** Statuses an operator may abandon: parked, or still waiting (never one being run right now). */
const ABANDONABLE: WorkItemStatus[] = ['parked', 'pending'];

/** Parked items, oldest first. The token is the last id seen (opaque to callers). */
export async function listParkedWork(db: Database, opts: { pageSize?: number; pageToken?: string } = {}): Promise<ParkedWorkPage> {
  const size = Math.min(MAX_PARKED_PAGE_SIZE, opts.pageSize && opts.pageSize > 0 ? opts.pageSize : DEFAULT_PAGE_SIZE);
  const after = opts.pageToken ? decodeToken(opts.pageToken) : 0;
  const rows = await db.read((em) =>
    em.find(WorkItemEntity, { where: { status: 'parked', id: MoreThan(after) }, order: { id: 'ASC' }, take: size + 1 }),
  );
  const items = rows.slice(0, size).map(toWorkItemView);
  const last = items[items.length - 1];
  return rows.length > size && last ? { items, nextPageToken: encodeToken(last.id) } : { items };
}

/** Parked -> pending, attempts reset, due now. */
export function replayWork(db: Database, id: number, clock: Clock = systemClock): Promise<WorkAdminResult> {
  return db.transaction(async (em) => {
    const now = clock.now();
    const r = await em.update(
      WorkItemEntity,
      { id, status: 'parked' },
      { status: 'pending', attempts: 0, nextAttemptAt: now, leaseOwner: null, leaseUntil: null, updatedAt: now },
    );
    return finish(em, id, (r.affected ?? 0) > 0, now);
  });
}

/** Parked or pending -> abandoned (final), keeping the operator's reason as the last error. */
export function abandonWork(db: Database, id: number, reason: string, clock: Clock = systemClock): Promise<WorkAdminResult> {
  const why = reason.trim();
  if (why === '') throw new Error('abandonWork: an operator reason is required');
  return db.transaction(async (em) => {
    const now = clock.now();
    const r = await em.update(
      WorkItemEntity,
      { id, status: In(ABANDONABLE) },
      { status: 'abandoned', lastError: `abandoned by operator: ${safeErrorText(why)}`, leaseOwner: null, leaseUntil: null, updatedAt: now },
    );
    return finish(em, id, (r.affected ?? 0) > 0, now);
  });
}

async function finish(em: EntityManager, id: number, changed: boolean, now: number): Promise<WorkAdminResult> {
  const row = await em.findOne(WorkItemEntity, { where: { id } });
  if (!row) return { ok: false, reason: 'not_found' };
  if (!changed) return { ok: false, reason: 'wrong_status', status: row.status };
  await em.update(
    OperatorExceptionEntity,
    { kind: WORK_PARKED_EXCEPTION, resolvedAt: IsNull(), detail: Like(`${workExceptionDetailPrefix(id)}%`) },
    { resolvedAt: now },
  );
  return { ok: true, item: toWorkItemView(row) };
}

function encodeToken(id: number): string {
  return Buffer.from(`w:${id}`).toString('base64url');
}

function decodeToken(token: string): number {
  const m = /^w:(\d{1,15})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  if (!m) throw new InvalidWorkPageTokenError();
  return Number(m[1]);
}
