/**
 * Runs durable work items through registered handlers.
 *
 * - Claim: due `pending` items, and `in_flight` items whose lease expired (their worker crashed or was stopped
 *   mid-call: the call is made again with the SAME idempotency key, so handlers must be safe to repeat). One
 *   autocommit SELECT finds the candidates with the first open item of each one's order (it is also the idle probe);
 *   one conditional UPDATE leases them, guarded by their status/lease and the attempt count read, so of several
 *   runners/replicas racing for an item exactly one wins it. No transaction and no row lock is held meanwhile.
 *   Only kinds this runner has a handler for, and never items of an upstream whose breaker is open.
 * - In order per order: an item runs only when no earlier non-final (pending/in_flight/parked) item of its order
 *   exists, so a resend never overtakes its send and nothing overtakes a parked item.
 * - Outcome: done; retry with exponential backoff + jitter; park after max attempts or on a terminal error,
 *   raising an operator exception (row + `exception.raised` event). A call refused by an open/half-open breaker
 *   is put back without counting as an attempt. Items done in the same turn of the event loop (a batch) are
 *   recorded in one transaction, their writes in one round trip; if any of them cannot be (its lease was lost, a
 *   guard of its result did not hold, a statement failed), each is recorded on its own instead, as if never merged.
 * - Idle: polls every `pollIntervalMs`, and is woken at once when a transaction of this process commits new work.
 * - The foreground first: while the gateway is answering requests someone waits for (`foregroundInFlight`), fewer
 *   items run at once (never fewer than one, so work always progresses).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { AfterQueryEvent, EntityManager, EntitySubscriberInterface, QueryRunner, TransactionCommitEvent, TransactionRollbackEvent } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import { BreakerOpenError, UpstreamTimeoutError, isBusinessRejection, type BreakerRegistry } from '../breakers/breaker-registry';
import { appendEventStatements, exceptionRaised } from '../outbox/outbox';
import type { Database, DatabaseKind } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { insertStatement, runAlone, runStatements, type SqlStatement, type StatementResult } from '../persistence/statement-batch';
import { safeErrorText } from './work-queue';
import { equalJitterBackoff, InterruptibleSleep } from '../support/backoff';
import { positive } from '../support/positive-option';

/**
 * The rows a `done` result writes of its own (an event, a state change), in the transaction that marks the item done
 * and only if the lease is still ours - so a crash between the two can never re-run the call and record its result a
 * second time.
 */
export interface ResultRecord {
  /** Built inside that transaction and sent with the completion in one round trip. */
  statements(em: EntityManager): readonly SqlStatement[];
  /**
   * Whether the statements' guards held, from their results (in `statements` order): e.g. an
   * `UPDATE … WHERE state = 'recorded'` changed its row. When not, they are undone and `otherwise` runs in their place.
   */
  held?(results: readonly StatementResult[]): boolean;
  /**
   * When a guard did not hold: reads and writes (with row locks) in a new transaction with the completion. Absent: the
   * item is done with nothing recorded (an earlier run recorded it, or the state moved on).
   */
  otherwise?(em: EntityManager): Promise<void>;
}

/** What a handler decided. Errors are stored and shown to operators: no personal data in them. */
export type WorkOutcome =
  | { readonly outcome: 'done'; readonly record?: ResultRecord }
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
  /** For the handler's own reads, and transactions for results that are not the item's completion. */
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
  /**
   * Look for due work this often when idle (default 1 s). Work this process commits wakes the runner at once, and
   * retries it scheduled itself are looked for when due: polling finds what other replicas enqueue.
   */
  readonly pollIntervalMs?: number;
  /**
   * Requests the gateway is answering right now that someone waits for (Taobao's notice ack, a gate's Redeem). While
   * there are n, at most max(1, floor(concurrency / (1 + n))) items run: background calls yield to them, and never
   * stop. Measured (bench section 1): `concurrency - n` still let the runner take a fifth of a notice burst's CPU,
   * and batches of `concurrency` items (their reads and completions merged) still took 15-25% of the notices'
   * throughput, where the Redeems gained nothing measurable.
   */
  readonly foregroundInFlight?: () => number;
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
  readonly onOutcome?: (item: WorkItemRef, outcome: OutcomeLabel | 'lease_lost') => void;
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

/** Thrown inside an outcome's transaction to roll it back: another runner holds the item now. */
class LeaseLost extends Error {}

/** Thrown inside a completion's transaction to roll it back: a guard of the result's record did not hold. */
class RecordDidNotHold extends Error {}

export type OutcomeLabel = WorkOutcome['outcome'] | 'breaker_open';

interface Running {
  readonly item: WorkItemRef;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  discarded: boolean;
}

// Fixed SQL instead of the query builder: the claim runs on every poll and every outcome is one of these, and
// typeorm's query building and entity hydration cost more than the statements themselves.
const due = (w = '') => `((${w}status = 'pending' AND ${w}next_attempt_at <= ?) OR (${w}status = 'in_flight' AND ${w}lease_until <= ?))`;
const MINE = `id = ? AND lease_owner = ? AND status = 'in_flight'`;

interface CandidateRow {
  readonly id: number | string;
  readonly idempotencyKey: string;
  readonly orderId: string | null;
  readonly kind: string;
  readonly upstream: string;
  readonly payload: string;
  readonly attempts: number | string;
  /** The earliest item of the candidate's order in each non-final status (null: none, or no order). */
  readonly firstPendingId: number | string | null;
  readonly firstInFlightId: number | string | null;
  readonly firstParkedId: number | string | null;
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
  /** Set when something may have become runnable while the loop was not asleep (mid-claim): look again at once. */
  private woken = false;
  /** When items this runner put back become due (clock time), so it looks then rather than at the next poll. */
  private dueTimes: number[] = [];
  private readonly localWork: LocalWorkWatch;
  /** Completions waiting for the end of this turn of the event loop, to be written together. */
  private completions: Completion[] = [];

  constructor(private readonly opts: WorkRunnerOptions) {
    this.db = opts.db;
    this.clock = opts.clock ?? systemClock;
    this.owner = (opts.owner ?? `work:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`).slice(0, 64);
    this.concurrency = positive(opts.concurrency, 4);
    this.pollIntervalMs = positive(opts.pollIntervalMs, 1_000);
    this.leaseMs = positive(opts.leaseMs, 60_000);
    this.maxAttempts = positive(opts.maxAttempts, 10);
    this.backoffBaseMs = positive(opts.backoffBaseMs, 1_000);
    this.backoffMaxMs = positive(opts.backoffMaxMs, 10 * 60_000);
    this.breakerRecheckMs = positive(opts.breakerRecheckMs, 1_000);
    this.attemptTimeoutMs = positive(opts.attemptTimeoutMs, 30_000);
    this.random = opts.random ?? Math.random;
    this.localWork = new LocalWorkWatch(() => this.wake());
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
    this.db.dataSource.subscribers.push(this.localWork);
    this.loop = this.run();
  }

  /**
   * Stops claiming and waits up to `graceMs` (default 10 s) for running items. Items still running then are
   * aborted and left as they are (in_flight, leased): whatever they did is not recorded here, and once the lease
   * expires another runner re-runs them with the same idempotency key.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const subscribers = this.db.dataSource.subscribers;
    if (subscribers.includes(this.localWork)) subscribers.splice(subscribers.indexOf(this.localWork), 1);
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

  private wake(): void {
    this.woken = true;
    this.nap.wake();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.woken = false;
      let delay = this.untilNextDue();
      const free = this.allowedConcurrency() - this.running.size;
      if (free > 0) {
        try {
          const claimed = await this.claim(free);
          for (const item of claimed.items) this.launch(item);
          // All we asked for: more may be waiting. Raced by another runner: the candidates after those may be free.
          if (claimed.items.length === free || claimed.raced) delay = 0;
        } catch (err) {
          this.opts.logger?.error({ err: safeErrorText(err), owner: this.owner }, 'claiming work failed');
        }
      }
      if (delay > 0 && !this.stopping && !this.woken) await this.nap.sleep(delay);
    }
  }

  /** Items allowed to run now: fewer while the foreground is busy, never none. */
  private allowedConcurrency(): number {
    const foreground = this.opts.foregroundInFlight?.() ?? 0;
    return Math.max(1, Math.floor(this.concurrency / (1 + foreground)));
  }

  /** Sleep before the next look: the poll interval, or less when an item this runner put back is due sooner. */
  private untilNextDue(): number {
    const now = this.clock.now();
    // Those due by now are covered by the claim about to run.
    this.dueTimes = this.dueTimes.filter((t) => t > now);
    const soonest = this.dueTimes.reduce((a, b) => Math.min(a, b), Infinity);
    return Math.max(1, Math.min(this.pollIntervalMs, soonest - now));
  }

  /** One claim-and-run round, waiting for the claimed items to finish; for tests and one-shot draining. */
  async runOnce(): Promise<number> {
    const { items } = await this.claim(this.concurrency);
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
        this.wake(); // the order's next item may be runnable now
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
    const ref = item.ref;
    let written: { label: OutcomeLabel; applied: boolean };
    try {
      written = await this.write(item, outcome);
    } catch (err) {
      if (outcome === 'breaker_open' || outcome.outcome !== 'done') throw err;
      // The result's rows could not be written (a deadlock, a constraint): the call is repeated later under the
      // same idempotency key, as after any failure whose effect is unknown.
      written = await this.write(item, { outcome: 'retry', error: `recording the result failed: ${safeErrorText(err)}`, ambiguous: true });
    }
    if (!written.applied) {
      this.opts.logger?.warn({ workItem: ref.id, kind: ref.kind }, 'work item lease lost before its outcome was recorded');
      this.opts.onOutcome?.(ref, 'lease_lost');
      return;
    }
    if (written.label === 'park') this.opts.logger?.warn({ workItem: ref.id, kind: ref.kind, upstream: ref.upstream, attempts: item.attempt }, 'work item parked');
    this.opts.onOutcome?.(ref, written.label);
  }

  private async write(item: ClaimedItem, outcome: WorkOutcome | 'breaker_open'): Promise<{ label: OutcomeLabel; applied: boolean }> {
    const now = this.clock.now();
    const ref = item.ref;
    if (outcome === 'breaker_open') {
      // Not the item's fault: give the attempt back and look again soon.
      return { label: 'breaker_open', applied: await this.putBack(ref, now, { nextAttemptAt: now + this.breakerRecheckMs, charged: false }) };
    }
    if (outcome.outcome === 'done') return { label: 'done', applied: await this.complete(ref, now, outcome.record) };
    const error = safeErrorText(outcome.error);
    if (outcome.outcome === 'retry' && this.opts.breakers && this.opts.breakers.state(ref.upstream) !== 'closed') {
      // The upstream is down (this failure tripped the breaker, or a half-open probe failed): the item is not at
      // fault, so the attempt is not charged; it waits for the breaker like the rest of the upstream's work.
      const lastError = `[upstream unavailable] ${error}`;
      return { label: 'breaker_open', applied: await this.putBack(ref, now, { nextAttemptAt: now + this.breakerRecheckMs, charged: false, lastError }) };
    }
    if (outcome.outcome === 'retry' && item.attempt < this.maxAttempts) {
      const lastError = outcome.ambiguous ? `[ambiguous] ${error}` : error;
      return { label: 'retry', applied: await this.putBack(ref, now, { nextAttemptAt: now + this.backoffDelay(item.attempt), charged: true, lastError }) };
    }
    const why = outcome.outcome === 'retry' ? `gave up after ${item.attempt} attempts: ${error}` : error;
    const applied = await unlessLeaseLost(
      this.db.transaction(async (em) => {
        const [parked] = await runStatements(em, [
          this.settle(ref, now, { status: 'parked', lastError: why }),
          ...workExceptionStatements(em, ref, `parked after ${item.attempt} attempt(s): ${why}`, now, this.clock),
        ]);
        if (parked!.affected === 0) throw new LeaseLost();
        return true;
      }),
    );
    return { label: 'park', applied };
  }

  /**
   * Done, with the result's own rows in the same transaction; false when the lease was lost. Completions of the same
   * turn of the event loop are written together (see flushCompletions).
   */
  private complete(ref: WorkItemRef, now: number, record: ResultRecord | undefined): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.completions.push({ ref, now, record, resolve, reject });
      if (this.completions.length === 1) setImmediate(() => void this.flushCompletions());
    });
  }

  /**
   * One transaction for every completion waiting: each item's `done` and its result's rows, in one round trip (plus
   * the COMMIT). If any member cannot be recorded (its lease was lost, a guard did not hold, a statement failed) the
   * transaction is undone and each member is recorded on its own, with its own answer.
   */
  private async flushCompletions(): Promise<void> {
    const members = this.completions;
    this.completions = [];
    if (members.length > 1) {
      try {
        await this.db.transaction(async (em) => {
          const statements: SqlStatement[] = [];
          const spans = members.map((m) => {
            const own = [this.settle(m.ref, m.now, { status: 'done', lastError: null }), ...(m.record?.statements(em) ?? [])];
            statements.push(...own);
            return { at: statements.length - own.length, count: own.length };
          });
          const results = await runStatements(em, statements);
          members.forEach((m, i) => {
            const { at, count } = spans[i]!;
            if (results[at]!.affected === 0) throw new LeaseLost();
            if (m.record?.held && !m.record.held(results.slice(at + 1, at + count))) throw new RecordDidNotHold();
          });
        });
        for (const m of members) m.resolve(true);
        return;
      } catch {
        // Recorded one by one below; whatever made the batch fail shows up again for the member it belongs to.
      }
    }
    for (const m of members) this.completeAlone(m.ref, m.now, m.record).then(m.resolve, m.reject);
  }

  private async completeAlone(ref: WorkItemRef, now: number, record: ResultRecord | undefined): Promise<boolean> {
    const done = this.settle(ref, now, { status: 'done', lastError: null });
    if (!record) return (await runAlone(this.db, done)).affected > 0;
    try {
      return await this.db.transaction(async (em) => {
        const [completed, ...results] = await runStatements(em, [done, ...record.statements(em)]);
        if (completed!.affected === 0) throw new LeaseLost();
        if (record.held && !record.held(results)) throw new RecordDidNotHold();
        return true;
      });
    } catch (err) {
      if (err instanceof LeaseLost) return false;
      if (!(err instanceof RecordDidNotHold)) throw err;
    }
    const { otherwise } = record;
    if (!otherwise) return (await runAlone(this.db, done)).affected > 0;
    return unlessLeaseLost(
      this.db.transaction(async (em) => {
        const [completed] = await runStatements(em, [done]);
        if (completed!.affected === 0) throw new LeaseLost();
        await otherwise(em);
        return true;
      }),
    );
  }

  /** Back to pending, due at `nextAttemptAt`; false when the lease was lost. */
  private async putBack(ref: WorkItemRef, now: number, o: { nextAttemptAt: number; charged: boolean; lastError?: string }): Promise<boolean> {
    const applied = (await runAlone(this.db, this.settle(ref, now, { status: 'pending', ...o }))).affected > 0;
    if (applied) this.dueTimes.push(o.nextAttemptAt);
    return applied;
  }

  /** The UPDATE that ends this runner's lease on the item with its outcome; it changes nothing once the lease is lost. */
  private settle(
    ref: WorkItemRef,
    now: number,
    o: { status: 'done' | 'pending' | 'parked'; lastError?: string | null; nextAttemptAt?: number; charged?: boolean },
  ): SqlStatement {
    let set = 'status = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?';
    const params: unknown[] = [o.status, now];
    if (o.lastError !== undefined) {
      set += ', last_error = ?';
      params.push(o.lastError);
    }
    if (o.nextAttemptAt !== undefined) {
      set += ', next_attempt_at = ?';
      params.push(o.nextAttemptAt);
    }
    if (o.charged === false) set += ', attempts = attempts - 1';
    return { sql: `UPDATE work_items SET ${set} WHERE ${MINE}`, params: [...params, ref.id, this.owner] };
  }

  /**
   * Claims up to `limit` runnable items and leases them to this runner. `raced`: another runner won some of the
   * candidates between our read and our lease.
   */
  private async claim(limit: number): Promise<{ items: ClaimedItem[]; raced: boolean }> {
    const kinds = [...this.handlers.keys()];
    const open = this.opts.breakers?.openUpstreams() ?? [];
    const now = this.clock.now();
    // More than we need: some candidates are blocked by an earlier item of their order.
    const candidateParams = (at: number) => [at, ...kinds, ...open, limit * 2 + 4];
    const rows: CandidateRow[] = await this.db.read((em) =>
      em.query(candidatesSql(this.db.kind, kinds.length, open.length), [...candidateParams(now), ...candidateParams(now)]),
    );
    const runnable = rows
      .filter((c) => (c.orderId === null || firstOpenId(c) === Number(c.id)) && !this.running.has(Number(c.id)))
      .slice(0, limit);
    if (runnable.length === 0) return { items: [], raced: false };

    const leaseUntil = now + this.leaseMs;
    const which = runnable.map(() => '(id = ? AND attempts = ?)').join(' OR ');
    const leased = await runAlone(this.db, {
      sql: `UPDATE work_items SET status = 'in_flight', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE (${which}) AND ${due()}`,
      params: [this.owner, leaseUntil, now, ...runnable.flatMap((c) => [Number(c.id), Number(c.attempts)]), now, now],
    });
    let mine = runnable;
    if (leased.affected < runnable.length) {
      // Which ones: only this UPDATE gives an item this owner and this lease end.
      const ids = runnable.map((c) => Number(c.id));
      const ours: Array<{ id: number | string }> = await this.db.read((em) =>
        em.query(`SELECT id FROM work_items WHERE id IN (${ids.map(() => '?').join(', ')}) AND lease_owner = ? AND lease_until = ?`, [...ids, this.owner, leaseUntil]),
      );
      const won = new Set(ours.map((r) => Number(r.id)));
      mine = runnable.filter((c) => won.has(Number(c.id)));
    }
    const items = mine.map((c) => ({
      ref: { id: Number(c.id), idempotencyKey: c.idempotencyKey, orderId: c.orderId, kind: c.kind, upstream: c.upstream },
      payload: c.payload,
      attempt: Number(c.attempts) + 1,
    }));
    return { items, raced: mine.length < runnable.length };
  }

  /** base * 2^(attempt-1), capped; "equal jitter" so retries of many items spread out. */
  private backoffDelay(attempt: number): number {
    return equalJitterBackoff(attempt, this.backoffBaseMs, this.backoffMaxMs, this.random);
  }
}

/** The non-final statuses, each asked for on its own: an equality on (order_id, status) reads only those rows. */
const OPEN_STATUSES = [
  ['pending', 'firstPendingId'],
  ['in_flight', 'firstInFlightId'],
  ['parked', 'firstParkedId'],
] as const;

/** The earliest non-final item of a candidate's order. */
function firstOpenId(c: CandidateRow): number {
  return Math.min(...OPEN_STATUSES.map(([, column]) => (c[column] === null ? Infinity : Number(c[column]))));
}

/**
 * Due candidates, each with the first non-final item of its order (runnable only if that is itself): expired leases
 * first, then pending items by due time. Each part reads its own range of the (status, next_attempt_at) index, and
 * each order's open items come through (order_id, status, id); the indexes are named as hints because finished
 * items stay in the table and the planner, left to itself, walked the primary key through all of them (MariaDB,
 * 20,000 finished items and 500 due: 28 ms a claim; this way about 2 ms, whatever the history).
 */
function candidatesSql(db: DatabaseKind, kinds: number, openUpstreams: number): string {
  const list = (n: number) => Array.from({ length: n }, () => '?').join(', ');
  const use = (index: string) => (db === 'mysql' ? `FORCE INDEX (${index})` : `INDEXED BY ${index}`);
  const which = `w.kind IN (${list(kinds)})${openUpstreams > 0 ? ` AND w.upstream NOT IN (${list(openUpstreams)})` : ''}`;
  const select = (where: string, order: string) =>
    `SELECT w.id, w.idempotency_key AS idempotencyKey, w.order_id AS orderId, w.kind, w.upstream, w.payload, w.attempts,
      ${OPEN_STATUSES.map(([status, column]) => `(SELECT MIN(f.id) FROM work_items f ${use('idx_work_items_order_id_status_id')} WHERE f.order_id = w.order_id AND f.status = '${status}') AS ${column}`).join(',\n      ')}
    FROM work_items w ${use('idx_work_items_status_next_attempt_at')}
    WHERE ${where} AND ${which} ORDER BY ${order} LIMIT ?`;
  // Each part keeps its own ORDER BY and LIMIT: parenthesised on MariaDB (a derived table would be materialised on
  // every claim), a subquery on SQLite (which has no parenthesised UNION parts).
  const part = (where: string, order: string) => (db === 'mysql' ? `(${select(where, order)})` : `SELECT * FROM (${select(where, order)}) AS c`);
  return `${part(`w.status = 'in_flight' AND w.lease_until <= ?`, 'w.id')}
  UNION ALL
  ${part(`w.status = 'pending' AND w.next_attempt_at <= ?`, 'w.next_attempt_at, w.id')}`;
}

/** A `done` outcome waiting to be written with the others of its turn. */
interface Completion {
  readonly ref: WorkItemRef;
  readonly now: number;
  readonly record: ResultRecord | undefined;
  readonly resolve: (applied: boolean) => void;
  readonly reject: (err: unknown) => void;
}

interface ClaimedItem {
  readonly ref: WorkItemRef;
  readonly payload: string;
  readonly attempt: number;
}

async function unlessLeaseLost(applied: Promise<boolean>): Promise<boolean> {
  try {
    return await applied;
  } catch (err) {
    if (err instanceof LeaseLost) return false;
    throw err;
  }
}

/** The operator exception for a work item (+ `exception.raised` event when it belongs to an order), as statements. */
function workExceptionStatements(em: EntityManager, ref: WorkItemRef, detail: string, now: number, clock: Clock): SqlStatement[] {
  const text = `${workExceptionDetailPrefix(ref.id)} kind=${ref.kind}; upstream=${ref.upstream}; ${safeErrorText(detail)}`;
  const statements = [insertStatement(em, OperatorExceptionEntity, { kind: WORK_PARKED_EXCEPTION, orderId: ref.orderId, detail: text, createdAt: now, resolvedAt: null })];
  if (ref.orderId !== null) {
    statements.push(...appendEventStatements(em, [{ orderId: ref.orderId, type: 'exception.raised', payload: exceptionRaised(WORK_PARKED_EXCEPTION, text, ref.id), occurredAt: now }], clock));
  }
  return statements;
}

/**
 * Notices new work committed by this process: any INSERT into work_items, once its transaction commits (at once
 * when it ran on its own). Every enqueue path (enqueueWork, enqueueWorkStatement) is such an INSERT.
 */
class LocalWorkWatch implements EntitySubscriberInterface {
  private readonly enqueuedIn = new WeakSet<QueryRunner>();
  constructor(private readonly wake: () => void) {}

  afterQuery(event: AfterQueryEvent): void {
    if (!event.success || !event.query.includes('work_items') || !INSERTS_WORK.test(event.query)) return;
    if (event.queryRunner.isTransactionActive) this.enqueuedIn.add(event.queryRunner);
    else this.wake();
  }

  afterTransactionCommit(event: TransactionCommitEvent): void {
    if (this.enqueuedIn.delete(event.queryRunner)) this.wake();
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    this.enqueuedIn.delete(event.queryRunner);
  }
}

const INSERTS_WORK = /\bINSERT\b[^;]*?\bINTO\s+[`"]?work_items\b/i;

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
