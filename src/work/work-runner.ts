/**
 * Runs durable work items through registered handlers.
 *
 * - Claim: due `pending` items, and `in_flight` items whose lease expired (their worker crashed or was stopped
 *   mid-call: the call is made again with the SAME idempotency key, so handlers must be safe to repeat).
 *   MySQL: `FOR UPDATE SKIP LOCKED` at READ COMMITTED, so several runners/replicas share the table; SQLite: one
 *   process. Only kinds this runner has a handler for, and never items of an upstream whose breaker is open.
 * - In order per order: an item runs only when no earlier non-final (pending/in_flight/parked) item of its order
 *   exists, so a resend never overtakes its send and nothing overtakes a parked item.
 * - Outcome: done; retry with exponential backoff + jitter; park after max attempts or on a terminal error,
 *   raising an operator exception (row + `exception.raised` event). A call refused by an open/half-open breaker
 *   is put back without counting as an attempt.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Brackets, In, Not, type EntityManager } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import { BreakerOpenError, UpstreamTimeoutError, isBusinessRejection, type BreakerRegistry } from '../breakers/breaker-registry';
import { appendEvent, exceptionRaised } from '../outbox/outbox';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { WorkItemEntity } from '../persistence/entities/work-item.entity';
import { safeErrorText } from './work-queue';
import { equalJitterBackoff, InterruptibleSleep } from '../support/backoff';

/** What a handler decided. Errors are stored and shown to operators: no personal data in them. */
export type WorkOutcome =
  /**
   * `record`: the result's own rows (an event, a state change), written in the same transaction that marks the
   * item done and only if the lease is still ours - so a crash between the two can never re-run the call and
   * record its result a second time.
   */
  | { readonly outcome: 'done'; readonly record?: (em: EntityManager) => Promise<void> }
  /** Transient: try again later. `ambiguous`: the outside party may have acted (a timeout after sending). */
  | { readonly outcome: 'retry'; readonly error: string; readonly ambiguous?: boolean }
  /** Terminal: retrying cannot help (a business refusal, a malformed request); an operator must look. */
  | { readonly outcome: 'park'; readonly error: string };

export interface WorkItemRef {
  readonly id: number;
  readonly idempotencyKey: string;
  readonly orderId: string | null;
  readonly kind: string;
  readonly upstream: string;
}

export interface WorkContext<P> {
  readonly payload: P;
  /** 1 on the first attempt; counts re-runs after a crash too. */
  readonly attempt: number;
  /** Aborted on timeout (breaker) or shutdown: pass it to the outside call. */
  readonly signal: AbortSignal;
  readonly item: WorkItemRef;
  /** For the handler's own follow-up transaction recording the result. */
  readonly db: Database;
  readonly clock: Clock;
}

export type WorkHandler<P = unknown> = (ctx: WorkContext<P>) => Promise<WorkOutcome>;

export interface WorkRunnerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface WorkRunnerOptions {
  readonly db: Database;
  /** When given, every call goes through the upstream's breaker (and its timeout). */
  readonly breakers?: BreakerRegistry;
  readonly clock?: Clock;
  /** Lease owner id; unique per runner. */
  readonly owner?: string;
  /** Items running at once (default 4). */
  readonly concurrency?: number;
  /** Sleep when idle (default 200 ms). */
  readonly pollIntervalMs?: number;
  /** How long a claim is ours; must exceed the longest call (default 60 s). */
  readonly leaseMs?: number;
  /** Attempts before an item parks (default 10). */
  readonly maxAttempts?: number;
  /** Retry delay: base * 2^(attempt-1), capped, with jitter (default 1 s .. 10 min). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** When a breaker refused the call: look again after this long (default 1 s). Not an attempt. */
  readonly breakerRecheckMs?: number;
  /** Time budget of one call when there is no breaker registry (default 30 s). */
  readonly attemptTimeoutMs?: number;
  readonly logger?: WorkRunnerLogger;
  readonly random?: () => number;
  /** Called after each recorded outcome (metrics). */
  readonly onOutcome?: (item: WorkItemRef, outcome: WorkOutcome['outcome'] | 'breaker_open' | 'lease_lost') => void;
}

/** Operator exception kind raised when work parks. */
export const WORK_PARKED_EXCEPTION = 'work_parked';

/** Marks the operator exception raised for a work item, so replay/abandon can resolve it. */
export function workExceptionDetailPrefix(workItemId: number): string {
  return `work_item=${workItemId};`;
}

/** Carries a `retry` outcome through the breaker as a failure (so a failing upstream trips it). */
class RetryOutcome extends Error {
  constructor(readonly outcome: Extract<WorkOutcome, { outcome: 'retry' }>) {
    super(outcome.error);
  }
}

interface Running {
  readonly item: WorkItemRef;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  discarded: boolean;
}

export class WorkRunner {
  readonly owner: string;
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly handlers = new Map<string, WorkHandler<any>>();
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly breakerRecheckMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly random: () => number;
  private readonly running = new Map<number, Running>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly nap = new InterruptibleSleep();

  constructor(private readonly opts: WorkRunnerOptions) {
    this.db = opts.db;
    this.clock = opts.clock ?? systemClock;
    this.owner = (opts.owner ?? `work:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`).slice(0, 64);
    this.concurrency = positive(opts.concurrency, 4);
    this.pollIntervalMs = positive(opts.pollIntervalMs, 200);
    this.leaseMs = positive(opts.leaseMs, 60_000);
    this.maxAttempts = positive(opts.maxAttempts, 10);
    this.backoffBaseMs = positive(opts.backoffBaseMs, 1_000);
    this.backoffMaxMs = positive(opts.backoffMaxMs, 10 * 60_000);
    this.breakerRecheckMs = positive(opts.breakerRecheckMs, 1_000);
    this.attemptTimeoutMs = positive(opts.attemptTimeoutMs, 30_000);
    this.random = opts.random ?? Math.random;
  }

  /** Registers the handler of a kind (once per kind). */
  register<P>(kind: string, handler: WorkHandler<P>): this {
    if (this.handlers.has(kind)) throw new Error(`a work handler for "${kind}" is already registered`);
    this.handlers.set(kind, handler as WorkHandler<any>);
    return this;
  }

  /** Items this runner is working on right now. */
  get inFlight(): number {
    return this.running.size;
  }

  start(): void {
    if (this.loop) return;
    if (this.handlers.size === 0) throw new Error('WorkRunner.start: no handlers registered');
    this.stopping = false;
    this.loop = this.run();
  }

  /**
   * Stops claiming and waits up to `graceMs` (default 10 s) for running items. Items still running then are
   * aborted and left as they are (in_flight, leased): whatever they did is not recorded here, and once the lease
   * expires another runner re-runs them with the same idempotency key.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.nap.wake();
    await this.loop;
    this.loop = undefined;
    const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((resolve) => (timer = setTimeout(() => resolve('grace'), Math.max(0, graceMs))));
    const first = await Promise.race([all.then(() => 'done' as const), graceOver]);
    clearTimeout(timer);
    if (first === 'grace') {
      for (const r of this.running.values()) {
        r.discarded = true;
        r.controller.abort(new Error('work runner stopped'));
      }
      this.running.clear();
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let delay = this.pollIntervalMs;
      const free = this.concurrency - this.running.size;
      if (free > 0) {
        try {
          const items = await this.claim(free);
          for (const item of items) this.launch(item);
          if (items.length === free) delay = 0;
        } catch (err) {
          this.opts.logger?.error({ err: safeErrorText(err), owner: this.owner }, 'claiming work failed');
        }
      }
      if (delay > 0 && !this.stopping) await this.nap.sleep(delay);
    }
  }

  /** One claim-and-run round, waiting for the claimed items to finish; for tests and one-shot draining. */
  async runOnce(): Promise<number> {
    const items = await this.claim(this.concurrency);
    for (const item of items) this.launch(item);
    await Promise.allSettled(items.map((i) => this.running.get(i.ref.id)?.done));
    return items.length;
  }

  private launch(item: ClaimedItem): void {
    const controller = new AbortController();
    const entry: Running = { item: item.ref, controller, discarded: false, done: Promise.resolve() };
    (entry as { done: Promise<void> }).done = (async () => {
      try {
        const outcome = await this.execute(item, controller);
        if (entry.discarded) return; // stopped mid-call: the lease decides who records it
        await this.record(item, outcome);
      } catch (err) {
        if (!entry.discarded) this.opts.logger?.error({ err: safeErrorText(err), workItem: item.ref.id }, 'recording work outcome failed');
      } finally {
        if (this.running.get(item.ref.id) === entry) this.running.delete(item.ref.id);
        this.nap.wake(); // the order's next item may be runnable now
      }
    })();
    this.running.set(item.ref.id, entry);
  }

  private async execute(item: ClaimedItem, controller: AbortController): Promise<WorkOutcome | 'breaker_open'> {
    const handler = this.handlers.get(item.ref.kind);
    if (!handler) return { outcome: 'park', error: `no handler for work kind "${item.ref.kind}"` };
    let payload: unknown;
    try {
      payload = JSON.parse(item.payload);
    } catch {
      return { outcome: 'park', error: 'payload is not valid JSON' };
    }
    const invoke = (signal: AbortSignal) =>
      handler({ payload, attempt: item.attempt, signal, item: item.ref, db: this.db, clock: this.clock });
    try {
      if (this.opts.breakers) {
        return await this.opts.breakers.call(
          item.ref.upstream,
          async (signal) => {
            const outcome = await invoke(signal);
            if (outcome.outcome === 'retry') throw new RetryOutcome(outcome);
            return outcome;
          },
          { signal: controller.signal },
        );
      }
      return await withTimeout(invoke, controller, this.attemptTimeoutMs, item.ref.upstream);
    } catch (err) {
      if (err instanceof RetryOutcome) return err.outcome;
      if (err instanceof BreakerOpenError) return 'breaker_open';
      if (err instanceof UpstreamTimeoutError) return { outcome: 'retry', error: err.message, ambiguous: true };
      if (isBusinessRejection(err)) return { outcome: 'park', error: safeErrorText(err) };
      // A thrown fault: we cannot tell whether the outside party acted.
      return { outcome: 'retry', error: safeErrorText(err), ambiguous: true };
    }
  }

  /** Writes the outcome, only if the lease is still ours (else another runner took the item over). */
  private async record(item: ClaimedItem, outcome: WorkOutcome | 'breaker_open'): Promise<void> {
    const now = this.clock.now();
    const ref = item.ref;
    const mine = { id: ref.id, leaseOwner: this.owner, status: 'in_flight' as const };
    const release = { leaseOwner: null, leaseUntil: null, updatedAt: now };
    let label: WorkOutcome['outcome'] | 'breaker_open' = outcome === 'breaker_open' ? 'breaker_open' : outcome.outcome;

    const applied = await this.db.transaction(async (em) => {
      if (outcome === 'breaker_open') {
        // Not the item's fault: give the attempt back and look again soon.
        const r = await em.update(WorkItemEntity, mine, { ...release, status: 'pending', attempts: () => 'attempts - 1', nextAttemptAt: now + this.breakerRecheckMs });
        return (r.affected ?? 0) > 0;
      }
      if (outcome.outcome === 'done') {
        const r = await em.update(WorkItemEntity, mine, { ...release, status: 'done', lastError: null });
        if ((r.affected ?? 0) === 0) return false;
        await outcome.record?.(em);
        return true;
      }
      const error = safeErrorText(outcome.error);
      if (outcome.outcome === 'retry' && this.opts.breakers && this.opts.breakers.state(ref.upstream) !== 'closed') {
        // The upstream is down (this failure tripped the breaker, or a half-open probe failed): the item is not at
        // fault, so the attempt is not charged; it waits for the breaker like the rest of the upstream's work.
        label = 'breaker_open';
        const r = await em.update(WorkItemEntity, mine, {
          ...release,
          status: 'pending',
          attempts: () => 'attempts - 1',
          lastError: `[upstream unavailable] ${error}`,
          nextAttemptAt: now + this.breakerRecheckMs,
        });
        return (r.affected ?? 0) > 0;
      }
      if (outcome.outcome === 'retry' && item.attempt < this.maxAttempts) {
        const text = outcome.ambiguous ? `[ambiguous] ${error}` : error;
        const r = await em.update(WorkItemEntity, mine, { ...release, status: 'pending', lastError: text, nextAttemptAt: now + this.backoffDelay(item.attempt) });
        return (r.affected ?? 0) > 0;
      }
      label = 'park';
      const why = outcome.outcome === 'retry' ? `gave up after ${item.attempt} attempts: ${error}` : error;
      const r = await em.update(WorkItemEntity, mine, { ...release, status: 'parked', lastError: why });
      if ((r.affected ?? 0) === 0) return false;
      await raiseWorkException(em, ref, `parked after ${item.attempt} attempt(s): ${why}`, now, this.clock);
      return true;
    });

    if (!applied) {
      this.opts.logger?.warn({ workItem: ref.id, kind: ref.kind }, 'work item lease lost before its outcome was recorded');
      this.opts.onOutcome?.(ref, 'lease_lost');
      return;
    }
    if (label === 'park') this.opts.logger?.warn({ workItem: ref.id, kind: ref.kind, upstream: ref.upstream, attempts: item.attempt }, 'work item parked');
    this.opts.onOutcome?.(ref, label);
  }

  /** Claims up to `limit` runnable items and leases them to this runner. */
  private claim(limit: number): Promise<ClaimedItem[]> {
    const kinds = [...this.handlers.keys()];
    const open = this.opts.breakers?.openUpstreams() ?? [];
    return this.db.transaction(async (em) => {
      const now = this.clock.now();
      let q = em
        .createQueryBuilder(WorkItemEntity, 'w')
        .where(
          new Brackets((b) =>
            b
              .where('(w.status = :pending AND w.nextAttemptAt <= :now)', { pending: 'pending', now })
              .orWhere('(w.status = :inFlight AND w.leaseUntil <= :now)', { inFlight: 'in_flight', now }),
          ),
        )
        .andWhere('w.kind IN (:...kinds)', { kinds })
        .orderBy('w.id', 'ASC')
        // More than we need: some candidates are blocked by an earlier item of their order.
        .limit(Math.max(limit * 4, 20));
      if (open.length > 0) q = q.andWhere('w.upstream NOT IN (:...open)', { open });
      if (this.db.supportsSkipLocked) q = q.setLock('pessimistic_write').setOnLocked('skip_locked');
      const candidates = await q.getMany();
      if (candidates.length === 0) return [];

      const runnable = (await this.firstOfEachOrder(em, candidates)).slice(0, limit);
      if (runnable.length === 0) return [];
      await em.update(
        WorkItemEntity,
        { id: In(runnable.map((c) => Number(c.id))) },
        { status: 'in_flight', leaseOwner: this.owner, leaseUntil: now + this.leaseMs, attempts: () => 'attempts + 1', updatedAt: now },
      );
      return runnable.map((c) => ({
        ref: { id: Number(c.id), idempotencyKey: c.idempotencyKey, orderId: c.orderId, kind: c.kind, upstream: c.upstream },
        payload: c.payload,
        attempt: c.attempts + 1,
      }));
    });
  }

  /** Keeps candidates that are the earliest non-final item of their order (or belong to no order). */
  private async firstOfEachOrder(em: EntityManager, candidates: WorkItemEntity[]): Promise<WorkItemEntity[]> {
    const orderIds = [...new Set(candidates.map((c) => c.orderId).filter((o): o is string => o !== null))];
    const first = new Map<string, number>();
    if (orderIds.length > 0) {
      const rows: Array<{ orderId: string; firstId: number | string }> = await em
        .createQueryBuilder(WorkItemEntity, 'w')
        .select('w.orderId', 'orderId')
        .addSelect('MIN(w.id)', 'firstId')
        .where('w.orderId IN (:...orderIds)', { orderIds })
        .andWhere({ status: Not(In(['done', 'abandoned'])) })
        .groupBy('w.orderId')
        .getRawMany();
      for (const r of rows) first.set(r.orderId, Number(r.firstId));
    }
    return candidates.filter((c) => c.orderId === null || first.get(c.orderId) === Number(c.id));
  }

  /** base * 2^(attempt-1), capped; "equal jitter" so retries of many items spread out. */
  private backoffDelay(attempt: number): number {
    return equalJitterBackoff(attempt, this.backoffBaseMs, this.backoffMaxMs, this.random);
  }
}

interface ClaimedItem {
  readonly ref: WorkItemRef;
  readonly payload: string;
  readonly attempt: number;
}

/** Records an operator exception for a work item (+ `exception.raised` event when it belongs to an order). */
export async function raiseWorkException(em: EntityManager, ref: WorkItemRef, detail: string, now: number, clock: Clock): Promise<void> {
  const text = `${workExceptionDetailPrefix(ref.id)} kind=${ref.kind}; upstream=${ref.upstream}; ${safeErrorText(detail)}`;
  await em.insert(OperatorExceptionEntity, { kind: WORK_PARKED_EXCEPTION, orderId: ref.orderId, detail: text, createdAt: now, resolvedAt: null });
  if (ref.orderId !== null) {
    await appendEvent(em, { orderId: ref.orderId, type: 'exception.raised', payload: exceptionRaised(WORK_PARKED_EXCEPTION, text, ref.id), occurredAt: now }, clock);
  }
}

/** Without a breaker: the handler still gets a signal that aborts when the time budget runs out. */
async function withTimeout(
  invoke: (signal: AbortSignal) => Promise<WorkOutcome>,
  controller: AbortController,
  timeoutMs: number,
  upstream: string,
): Promise<WorkOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new UpstreamTimeoutError(upstream, timeoutMs);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([invoke(controller.signal), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}
