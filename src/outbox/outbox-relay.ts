/**
 * Publishes outbox rows to the broker, at least once, in order per order.
 *
 * - One relay publishes at a time: it holds the lease in `outbox_relay_leases`, renewing it as it goes; the
 *   other replicas' relays stand by and take over once it runs out (at once when the holder stops cleanly).
 *   Holding the whole outbox, the relay needs no claim written on each row: an event costs the database one
 *   row update (recording it published), where claiming rows one by one cost two, plus a query per batch for
 *   the orders another relay held.
 * - The batch: the oldest pending rows by id. Rows that failed wait for their retry instant, and so does every
 *   later event of their orders, so each order reaches the broker in id order. (Events of one order are appended
 *   under its row lock, so a late-committing event never has a later event of its order ahead of it.)
 * - Publish through the EventPublisher (acks=all, key = order id, event id/type headers), in id order, one batch
 *   at the broker at a time.
 * - Pipelined: while a batch is at the broker, one transaction records the batch before it as published and reads
 *   the one after it (leaving out the rows at the broker). If the broker refuses the batch, the batch read ahead
 *   is dropped: it may hold later events of the refused batch's orders.
 * - Linger: after a batch that was not full, the next read waits a little (20 ms), so events coming in a trickle
 *   (a Redeem's, a notice's) go out in a few bigger batches instead of one database round and broker request each.
 * - Failure: the rows stay `pending` with a retry-not-before instant (exponential backoff, counted in `attempts`);
 *   their orders wait, others go on. A crash loses nothing: rows become `published` only after the broker
 *   acknowledged them; what was acknowledged but not yet recorded is published again (consumers dedupe by id).
 * - Purge: `published` rows older than the retention are deleted in small batches, beside the publishing.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import type { Database } from '../persistence/database';
import { OutboxRelayLeaseEntity } from '../persistence/entities/outbox-event.entity';
import { insertStatement, runAlone, type SqlStatement } from '../persistence/statement-batch';
import type { EventPublisher, OutgoingEvent } from './event-publisher';
import { ORDER_EVENT_CONTENT_TYPE } from './outbox';
import { equalJitterBackoff, InterruptibleSleep } from '../support/backoff';
import { positive } from '../support/positive-option';

export interface RelayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface OutboxRelayOptions {
  readonly db: Database;
  readonly publisher: EventPublisher;
  readonly clock?: Clock;
  /** Prepended to each row's logical topic, e.g. `prod.` -> `prod.order-events`. Default ''. */
  readonly topicPrefix?: string;
  /** Lease owner id; unique per relay instance. */
  readonly owner?: string;
  /** Rows per batch (default 100). */
  readonly batchSize?: number;
  /**
   * Longest sleep when there is nothing to publish (default 200 ms). Right after events went out the relay
   * looks again within a few ms, doubling the pause on each empty look up to this.
   */
  readonly pollIntervalMs?: number;
  /**
   * After a batch smaller than `batchSize`, how long the next read waits while that batch is at the broker
   * (default 20 ms), so events coming in a trickle go out in fewer, bigger batches: each batch costs a database
   * round trip with a commit and a broker request, whatever its size. Adds at most this much to an event's lag.
   * 0 reads again at once.
   */
  readonly lingerMs?: number;
  /**
   * How long the publishing lease lasts unless renewed (default 15 s): after a crash, the time until another
   * relay takes over. The holder renews it at every batch once a quarter of it has passed; a standby relay
   * tries to take it every third of it (at most every second).
   */
  readonly leaseMs?: number;
  /** Backoff after a failed publish: initial, doubling, capped (default 250 ms .. 30 s), with jitter. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Events are kept this long after they were created (default 7 days), then purged; never while still queued. */
  readonly retentionMs?: number;
  /** How often the purge runs (default 60 s) and how much it deletes per statement / per run. */
  readonly purgeIntervalMs?: number;
  readonly purgeBatchSize?: number;
  readonly purgeMaxBatches?: number;
  readonly logger?: RelayLogger;
  /** Random source for jitter (tests). */
  readonly random?: () => number;
  /** Called after each batch the broker acknowledged (metrics). */
  readonly onPublished?: (count: number, createdAts: readonly number[]) => void;
  /** Called after each failed publish (metrics). */
  readonly onPublishFailed?: (count: number, error: unknown) => void;
}

export interface RelayRoundResult {
  readonly claimed: number;
  readonly published: number;
  readonly failed: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** The lease row of the gateway's one outbox. */
const LEASE_NAME = 'outbox_events';
/** First pause after the outbox turned empty: events tend to come in runs, so look again soon. */
const FIRST_EMPTY_POLL_MS = 5;

/** Rows in id order: `events[i]` is the row `ids[i]`. */
interface Batch {
  readonly ids: readonly number[];
  readonly events: readonly OutgoingEvent[];
}

const NO_EVENTS: Batch = { ids: [], events: [] };

type SendOutcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

/** What one database round found: the next batch, that another relay has the lease now, or a failure. */
type Round = { readonly kind: 'read'; readonly batch: Batch } | { readonly kind: 'lost' } | { readonly kind: 'failed'; readonly error: unknown };

/** The columns a batch reads; BIGINTs come back as strings from mysql2, as numbers from SQLite. */
interface CandidateRow {
  readonly id: number | string;
  readonly event_id: string;
  readonly order_id: string;
  readonly topic: string;
  readonly type: string;
  readonly schema_version: number | string;
  readonly payload: string;
  readonly created_at: number | string;
}

// Fixed SQL instead of the query builder and entities: the relay runs these for every batch, and typeorm's query
// building and entity hydration were about a third of the relay's own CPU per event.
const CANDIDATES_SQL = `SELECT e.id, e.event_id, e.order_id, e.topic, e.type, e.schema_version, e.payload, e.created_at
  FROM outbox_pending p JOIN outbox_events e ON e.id = p.id WHERE (p.retry_at IS NULL OR p.retry_at <= ?)`;
const TAKE_LEASE_SQL = `UPDATE outbox_relay_leases SET owner = ?, lease_until = ? WHERE name = ? AND (owner = ? OR lease_until <= ?)`;

export class OutboxRelay {
  private readonly db: Database;
  private readonly publisher: EventPublisher;
  private readonly clock: Clock;
  private readonly topicPrefix: string;
  readonly owner: string;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly lingerMs: number;
  private readonly leaseMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly retentionMs: number;
  private readonly purgeIntervalMs: number;
  private readonly purgeBatchSize: number;
  private readonly purgeMaxBatches: number;
  private readonly random: () => number;
  private readonly opts: OutboxRelayOptions;

  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly nap = new InterruptibleSleep();
  private consecutiveFailures = 0;
  private lastPurgeAt = 0;
  private purgeRun: Promise<void> | undefined;
  /** Do we hold the lease, and when did the statement that last took or renewed it start. */
  private leader = false;
  private leaseTakenAt = 0;
  /** Orders with an event waiting for its retry instant: none of their events goes out before it. */
  private readonly waitingOrders = new Map<string, number>();

  constructor(opts: OutboxRelayOptions) {
    this.opts = opts;
    this.db = opts.db;
    this.publisher = opts.publisher;
    this.clock = opts.clock ?? systemClock;
    this.topicPrefix = opts.topicPrefix ?? '';
    this.owner = (opts.owner ?? `relay:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`).slice(0, 64);
    this.batchSize = positive(opts.batchSize, 100);
    this.pollIntervalMs = positive(opts.pollIntervalMs, 200);
    this.lingerMs = Math.max(0, opts.lingerMs ?? 20);
    this.leaseMs = positive(opts.leaseMs, 15_000);
    this.backoffInitialMs = positive(opts.backoffInitialMs, 250);
    this.backoffMaxMs = positive(opts.backoffMaxMs, 30_000);
    this.retentionMs = positive(opts.retentionMs, 7 * DAY_MS);
    this.purgeIntervalMs = positive(opts.purgeIntervalMs, 60_000);
    this.purgeBatchSize = positive(opts.purgeBatchSize, 500);
    this.purgeMaxBatches = positive(opts.purgeMaxBatches, 20);
    this.random = opts.random ?? Math.random;
  }

  get running(): boolean {
    return this.loop !== undefined && !this.stopping;
  }

  /** Does this relay hold the publishing lease (as of its last look)? */
  get leading(): boolean {
    return this.leader;
  }

  /** Starts the background loop; a second call is a no-op. */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = this.run();
  }

  /**
   * Stops publishing, waits for the batch at the broker (bounded by the publisher's deadline), records what was
   * acknowledged, gives the lease back so a standby relay takes over at once, resolves.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.nap.wake();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let delay = 0;
      try {
        if (await this.takeLease()) delay = await this.publishWhileLeading();
        else delay = Math.min(1_000, this.leaseMs / 3);
      } catch (err) {
        // The database itself failed (down, deadlock): back off and try again.
        this.consecutiveFailures++;
        delay = this.backoffDelay(this.consecutiveFailures);
        this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay round failed');
      }
      if (delay > 0 && !this.stopping) await this.nap.sleep(delay);
    }
    await this.purgeRun;
    await this.giveLeaseBack();
  }

  /**
   * Publishes batch after batch while the lease is ours. Returns how long to pause before looking at the lease
   * again: when it was lost, or when the database failed (acknowledged batches not recorded yet are published
   * again later, which consumers absorb by event id).
   */
  private async publishWhileLeading(): Promise<number> {
    let acknowledged: Batch = NO_EVENTS;
    let atBroker: Batch = NO_EVENTS;
    let emptyLooks = 0;
    while (!this.stopping) {
      // The batch goes to the broker while the one before it is recorded and the one after it is read (after a
      // short linger when this batch was not full: the next one gathers more events).
      const linger = atBroker.ids.length > 0 && atBroker.ids.length < this.batchSize ? this.lingerMs : 0;
      const reading = linger > 0 ? this.nap.sleep(linger).then(() => this.round(acknowledged, atBroker)) : this.round(acknowledged, atBroker);
      const sent = atBroker.ids.length > 0 ? await this.send(atBroker) : undefined;
      const round = await reading;
      if (round.kind !== 'failed') acknowledged = NO_EVENTS;
      let pause = 0;
      if (sent?.ok) acknowledged = concat(acknowledged, atBroker);
      else if (sent) pause = await this.giveBack(atBroker, sent.error);
      // A batch read while a refused one was at the broker may hold later events of its orders: read again.
      const refused = sent !== undefined && !sent.ok;
      atBroker = round.kind === 'read' && !refused ? round.batch : NO_EVENTS;
      if (round.kind === 'lost') {
        this.leader = false;
        this.opts.logger?.warn({ owner: this.owner }, 'outbox relay lost its lease to another relay; standing by');
        await this.recordQuietly(acknowledged);
        return this.leaseMs / 3;
      }
      if (round.kind === 'failed') {
        this.consecutiveFailures++;
        this.opts.logger?.error({ err: describe(round.error), owner: this.owner }, 'outbox relay round failed');
        pause = Math.max(pause, this.backoffDelay(this.consecutiveFailures));
      }
      if (atBroker.ids.length > 0) emptyLooks = 0;
      else if (pause === 0) pause = Math.min(this.pollIntervalMs, FIRST_EMPTY_POLL_MS * 2 ** Math.min(emptyLooks++, 16));
      this.purgeWhenDue();
      if (pause > 0 && !this.stopping) await this.nap.sleep(pause);
    }
    await this.recordQuietly(acknowledged);
    return 0;
  }

  /** One round: claim, publish, record. Exposed for tests and for a one-shot flush; keeps the lease it takes. */
  async relayOnce(): Promise<RelayRoundResult> {
    if (!(await this.takeLease())) return { claimed: 0, published: 0, failed: 0 };
    const round = await this.round(NO_EVENTS, NO_EVENTS);
    if (round.kind === 'failed') throw round.error;
    if (round.kind === 'lost') return { claimed: 0, published: 0, failed: 0 };
    const batch = round.batch;
    const claimed = batch.ids.length;
    if (claimed === 0) return { claimed: 0, published: 0, failed: 0 };
    const sent = await this.send(batch);
    if (!sent.ok) {
      await this.giveBack(batch, sent.error);
      return { claimed, published: 0, failed: claimed };
    }
    await this.db.atomically(() => [this.recordStatement(batch)]);
    return { claimed, published: claimed, failed: 0 };
  }

  /**
   * Takes the lease if it is free, ran out, or is already ours. On taking it, learns which orders have an event
   * waiting for its retry instant (set by an earlier holder).
   */
  private async takeLease(): Promise<boolean> {
    const now = this.clock.now();
    const results = await this.db.atomically((em) => [
      insertStatement(em, OutboxRelayLeaseEntity, { name: LEASE_NAME, owner: '', leaseUntil: 0 }, { ignore: true }),
      this.leaseStatement(now),
    ]);
    if (results[1]!.affected === 0) {
      this.leader = false;
      return false;
    }
    this.leaseTakenAt = now;
    if (!this.leader) this.opts.logger?.info({ owner: this.owner }, 'outbox relay took the lease: publishing');
    this.leader = true;
    const waiting: Array<{ order_id: string; until: number | string }> = await this.db.read((em) =>
      em.query(`SELECT e.order_id, MAX(p.retry_at) AS until FROM outbox_pending p JOIN outbox_events e ON e.id = p.id WHERE p.retry_at > ? GROUP BY e.order_id`, [now]),
    );
    this.waitingOrders.clear();
    for (const w of waiting) this.waitingOrders.set(w.order_id, Number(w.until));
    return true;
  }

  private leaseStatement(now: number): SqlStatement {
    return { sql: TAKE_LEASE_SQL, params: [this.owner, now + this.leaseMs, LEASE_NAME, this.owner, now] };
  }

  /**
   * Records `acknowledged` as published, renews the lease once a quarter of it has passed, and reads the next batch
   * (the oldest publishable rows, leaving out `atBroker`): one round trip. Never rejects.
   */
  private async round(acknowledged: Batch, atBroker: Batch): Promise<Round> {
    try {
      const now = this.clock.now();
      for (const [orderId, until] of this.waitingOrders) if (until <= now) this.waitingOrders.delete(orderId);
      const statements: SqlStatement[] = [];
      if (acknowledged.ids.length > 0) statements.push(this.recordStatement(acknowledged));
      const renew = now - this.leaseTakenAt >= this.leaseMs / 4;
      if (renew) statements.push(this.leaseStatement(now));
      statements.push(this.candidatesStatement(now, atBroker));
      const results = statements.length === 1 ? [await runAlone(this.db, statements[0]!)] : await this.db.atomically(() => statements);
      if (renew) {
        if (results[results.length - 2]!.affected === 0) return { kind: 'lost' };
        this.leaseTakenAt = now;
      }
      const rows = results[results.length - 1]!.rows as unknown as CandidateRow[];
      return { kind: 'read', batch: { ids: rows.map((r) => Number(r.id)), events: rows.map((r) => this.toEvent(r)) } };
    } catch (error) {
      return { kind: 'failed', error };
    }
  }

  private candidatesStatement(now: number, atBroker: Batch): SqlStatement {
    let sql = CANDIDATES_SQL;
    const params: unknown[] = [now];
    if (atBroker.ids.length > 0) {
      sql += ` AND p.id NOT IN (${placeholders(atBroker.ids.length)})`;
      params.push(...atBroker.ids);
    }
    if (this.waitingOrders.size > 0) {
      sql += ` AND e.order_id NOT IN (${placeholders(this.waitingOrders.size)})`;
      params.push(...this.waitingOrders.keys());
    }
    return { sql: `${sql} ORDER BY p.id LIMIT ?`, params: [...params, this.batchSize] };
  }

  /** Publishes a batch; never rejects, the outcome says how it went. */
  private async send(batch: Batch): Promise<SendOutcome> {
    try {
      await this.publisher.publish(batch.events);
    } catch (error) {
      return { ok: false, error };
    }
    this.consecutiveFailures = 0;
    this.opts.onPublished?.(batch.ids.length, batch.events.map((e) => e.createdAt));
    return { ok: true };
  }

  private toEvent(row: CandidateRow): OutgoingEvent {
    return {
      topic: `${this.topicPrefix}${row.topic}`,
      key: row.order_id,
      eventId: row.event_id,
      type: row.type,
      schemaVersion: Number(row.schema_version),
      value: Buffer.from(row.payload, 'base64'),
      createdAt: Number(row.created_at),
      contentType: ORDER_EVENT_CONTENT_TYPE,
    };
  }

  /** The broker has them: out of the queue. */
  private recordStatement(batch: Batch): SqlStatement {
    return { sql: `DELETE FROM outbox_pending WHERE id IN (${placeholders(batch.ids.length)})`, params: batch.ids };
  }

  /** Records a batch the broker acknowledged; when even that fails the rows are published again later. */
  private async recordQuietly(acknowledged: Batch): Promise<void> {
    if (acknowledged.ids.length === 0) return;
    try {
      await this.db.atomically(() => [this.recordStatement(acknowledged)]);
    } catch (err) {
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay could not record its last batch; it is published again later');
    }
  }

  /**
   * After a failed publish the rows stay pending with a retry-not-before instant, and their orders wait for it;
   * returns how long the relay backs off. If even this write fails (database down too), the orders still wait
   * while this relay holds the lease.
   */
  private async giveBack(failed: Batch, error: unknown): Promise<number> {
    this.consecutiveFailures++;
    const delay = this.backoffDelay(this.consecutiveFailures);
    const retryAt = this.clock.now() + delay;
    for (const e of failed.events) this.waitingOrders.set(e.key, retryAt);
    try {
      await this.db.atomically(() => [
        {
          sql: `UPDATE outbox_pending SET retry_at = ?, attempts = attempts + 1 WHERE id IN (${placeholders(failed.ids.length)})`,
          params: [retryAt, ...failed.ids],
        },
      ]);
    } catch (err) {
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay could not store the retry time');
    }
    this.opts.logger?.warn(
      { err: describe(error), events: failed.ids.length, failures: this.consecutiveFailures, retryInMs: delay },
      'outbox publish failed; events stay pending',
    );
    this.opts.onPublishFailed?.(failed.ids.length, error);
    return delay;
  }

  /** Gives the lease back on stop, so a standby relay takes over without waiting for it to run out. */
  private async giveLeaseBack(): Promise<void> {
    if (!this.leader) return;
    this.leader = false;
    try {
      await runAlone(this.db, { sql: `UPDATE outbox_relay_leases SET lease_until = 0 WHERE name = ? AND owner = ?`, params: [LEASE_NAME, this.owner] });
    } catch (err) {
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay could not give its lease back; it runs out instead');
    }
  }

  /** Starts a purge run beside the publishing when one is due. */
  private purgeWhenDue(): void {
    if (this.purgeRun || this.clock.now() - this.lastPurgeAt < this.purgeIntervalMs) return;
    this.purgeRun = this.purgeInBackground().finally(() => (this.purgeRun = undefined));
  }

  private async purgeInBackground(): Promise<void> {
    const startedAt = this.clock.now();
    try {
      const purged = await this.purgeOnce();
      // A run that used its whole budget left due rows behind (more than the budget is published per interval at
      // high rates): go on at the next turn instead of after the interval.
      if (purged < this.purgeBatchSize * this.purgeMaxBatches) this.lastPurgeAt = startedAt;
    } catch (err) {
      this.lastPurgeAt = startedAt;
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox purge failed');
    }
  }

  /** Deletes published events created longer ago than the retention, in small batches; returns how many. */
  async purgeOnce(): Promise<number> {
    const cutoff = this.clock.now() - this.retentionMs;
    let total = 0;
    for (let i = 0; i < this.purgeMaxBatches && !this.stopping; i++) {
      const { seen, deleted } = await this.db.transaction(async (em) => {
        // The oldest published events by id, due or not: filtering on created_at in SQL would scan every row of the
        // retention window whenever nothing is due. An event still queued is never deleted, and never queued again.
        const rows: Array<{ id: number | string; created_at: number | string }> = await em.query(
          `SELECT e.id, e.created_at FROM outbox_events e WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = e.id) ORDER BY e.id LIMIT ?`,
          [this.purgeBatchSize],
        );
        const due = rows.filter((r) => Number(r.created_at) < cutoff).map((r) => Number(r.id));
        if (due.length > 0) await em.query(`DELETE FROM outbox_events WHERE id IN (${placeholders(due.length)})`, due);
        return { seen: rows.length, deleted: due.length };
      });
      total += deleted;
      if (deleted === 0 || seen < this.purgeBatchSize) break;
    }
    if (total > 0) this.opts.logger?.info({ purged: total }, 'purged published outbox events');
    return total;
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, so replicas do not retry in lockstep. */
  private backoffDelay(failures: number): number {
    return equalJitterBackoff(failures, this.backoffInitialMs, this.backoffMaxMs, this.random);
  }
}

/**
 * Starts a relay when a publisher exists (KAFKA_BROKERS configured); otherwise returns undefined and events stay
 * in the outbox table, queryable, until a relay runs.
 */
export function startOutboxRelay(opts: Omit<OutboxRelayOptions, 'publisher'> & { publisher: EventPublisher | undefined }): OutboxRelay | undefined {
  if (!opts.publisher) {
    opts.logger?.info({}, 'no broker configured: outbox relay not started, events stay in outbox_events');
    return undefined;
  }
  const relay = new OutboxRelay({ ...opts, publisher: opts.publisher });
  relay.start();
  return relay;
}

/** Counts of the outbox, for health and metrics (pending backlog and the age of its oldest row). */
export async function outboxBacklog(db: Database, clock: Clock = systemClock): Promise<{ pending: number; oldestPendingAgeMs: number }> {
  return db.read(async (em) => {
    const [count]: Array<{ n: number | string }> = await em.query('SELECT COUNT(*) AS n FROM outbox_pending');
    const [oldest]: Array<{ created_at: number | string }> = await em.query(
      'SELECT e.created_at FROM outbox_pending p JOIN outbox_events e ON e.id = p.id ORDER BY p.id LIMIT 1',
    );
    return { pending: Number(count?.n ?? 0), oldestPendingAgeMs: oldest ? Math.max(0, clock.now() - Number(oldest.created_at)) : 0 };
  });
}

function describe(err: unknown): string {
  return redactPersonalData(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
}

function concat(a: Batch, b: Batch): Batch {
  if (a.ids.length === 0) return b;
  return { ids: [...a.ids, ...b.ids], events: [...a.events, ...b.events] };
}

function placeholders(count: number): string {
  return count === 1 ? '?' : `?${',?'.repeat(count - 1)}`;
}
