/**
 * Publishes outbox rows to the broker, at least once, in order per order.
 *
 * - Claim: the oldest pending rows not leased by anyone (MySQL: `FOR UPDATE SKIP LOCKED` at READ COMMITTED, so
 *   several relays/replicas share the table; SQLite: one process, transactions queued). Of those, only a
 *   contiguous prefix of each order's pending events is taken: if an earlier event of the order is leased (by
 *   another relay, by our own batch still at the broker, or waiting for its retry) or locked by a concurrent
 *   claim, the later ones wait too. No "last id seen" cursor: the table's status is the only truth, so a crash
 *   loses nothing.
 * - Publish through the EventPublisher (acks=all, key = order id, event id/type headers), in id order.
 * - Success: rows become `published`, in the transaction that claims the loop's next batch. Failure: rows stay
 *   `pending`, their lease turns into a retry-not-before instant with exponential backoff; the loop backs off too.
 * - Pipelined: LANES claim-publish-record loops share the table as that many relays would, so one loop's
 *   transaction runs while another's batch is at the broker. The claim rule alone keeps each order in sequence
 *   across loops and relays: none gets an event whose predecessor another holds, and a failed batch's rows stay
 *   pending, holding back their orders' later events.
 * - Purge: `published` rows older than the retention are deleted in small batches.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { EntityManager } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import type { Database } from '../persistence/database';
import { OutboxEventEntity } from '../persistence/entities/outbox-event.entity';
import type { EventPublisher, OutgoingEvent } from './event-publisher';
import { ORDER_EVENT_CONTENT_TYPE } from './outbox';
import { equalJitterBackoff, InterruptibleSleep } from '../support/backoff';

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
  /** Rows claimed per round (default 100). */
  readonly batchSize?: number;
  /**
   * Longest sleep when there is nothing to publish (default 200 ms). Right after events went out the relay
   * looks again within a few ms, doubling the pause on each empty look up to this.
   */
  readonly pollIntervalMs?: number;
  /** How long a claim is ours; must exceed the publisher's own deadline (default 60 s). */
  readonly leaseMs?: number;
  /** Backoff after a failed publish: initial, doubling, capped (default 250 ms .. 30 s), with jitter. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Published rows are kept this long (default 7 days), then purged. */
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
/**
 * Claim-publish-record loops per relay. With two, one loop's transaction (its commit waits for an fsync) overlaps
 * the other's broker round trip, and concurrent commits share an fsync. Measured on 2 cores: two beat one loop
 * with the next batch claimed ahead; three were slower (lock and CPU contention).
 */
const LANES = 2;
/** First pause after the outbox turned empty: events tend to come in runs, so look again soon. */
const FIRST_EMPTY_POLL_MS = 5;

/** Claimed rows in id order: `events[i]` is the row `ids[i]`. */
interface Batch {
  readonly ids: readonly number[];
  readonly events: readonly OutgoingEvent[];
}

const NO_EVENTS: Batch = { ids: [], events: [] };

type SendOutcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

/** The columns a claim reads; BIGINTs come back as strings from mysql2, as numbers from SQLite. */
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
const CANDIDATES_SQL = `SELECT id, event_id, order_id, topic, type, schema_version, payload, created_at FROM outbox_events
  WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ?`;

export class OutboxRelay {
  private readonly db: Database;
  private readonly publisher: EventPublisher;
  private readonly clock: Clock;
  private readonly topicPrefix: string;
  readonly owner: string;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly leaseMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly retentionMs: number;
  private readonly purgeIntervalMs: number;
  private readonly purgeBatchSize: number;
  private readonly purgeMaxBatches: number;
  private readonly random: () => number;
  private readonly opts: OutboxRelayOptions;
  /**
   * On a small table MariaDB reads the blockers below by the primary key range `id <= ?`, visiting every row
   * below the batch; the order index visits only the batch's orders.
   */
  private readonly orderIndexHint: string;
  private readonly candidatesSql: string;

  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly naps = new Set<InterruptibleSleep>();
  private consecutiveFailures = 0;
  private lastPurgeAt = 0;
  private purging = false;

  constructor(opts: OutboxRelayOptions) {
    this.opts = opts;
    this.db = opts.db;
    this.publisher = opts.publisher;
    this.clock = opts.clock ?? systemClock;
    this.topicPrefix = opts.topicPrefix ?? '';
    this.owner = (opts.owner ?? `relay:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`).slice(0, 64);
    this.batchSize = positive(opts.batchSize, 100);
    this.pollIntervalMs = positive(opts.pollIntervalMs, 200);
    this.leaseMs = positive(opts.leaseMs, 60_000);
    this.backoffInitialMs = positive(opts.backoffInitialMs, 250);
    this.backoffMaxMs = positive(opts.backoffMaxMs, 30_000);
    this.retentionMs = positive(opts.retentionMs, 7 * DAY_MS);
    this.purgeIntervalMs = positive(opts.purgeIntervalMs, 60_000);
    this.purgeBatchSize = positive(opts.purgeBatchSize, 500);
    this.purgeMaxBatches = positive(opts.purgeMaxBatches, 20);
    this.random = opts.random ?? Math.random;
    this.orderIndexHint = this.db.kind === 'mysql' ? ' FORCE INDEX (idx_outbox_events_order_id_id)' : '';
    this.candidatesSql = this.db.supportsSkipLocked ? `${CANDIDATES_SQL} FOR UPDATE SKIP LOCKED` : CANDIDATES_SQL;
  }

  get running(): boolean {
    return this.loop !== undefined && !this.stopping;
  }

  /** Starts the background loop; a second call is a no-op. */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = this.run();
  }

  /** Stops claiming, waits for the batches in flight (bounded by the publisher's deadline), records them, resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const nap of this.naps) nap.wake();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    const lanes = Array.from({ length: LANES }, () => this.lane());
    await Promise.all(lanes);
  }

  /** Claims, publishes, and records each batch as published in the same transaction that claims the next. */
  private async lane(): Promise<void> {
    const nap = new InterruptibleSleep();
    this.naps.add(nap);
    let acknowledged = NO_EVENTS;
    let emptyPolls = 0;
    while (!this.stopping) {
      let delay = 0;
      let batch = NO_EVENTS;
      try {
        batch = await this.db.transaction(async (em) => {
          await this.recordPublished(em, acknowledged);
          return this.stopping ? NO_EVENTS : this.claim(em);
        });
        acknowledged = NO_EVENTS;
      } catch (err) {
        // The database itself failed (down, deadlock): back off; unrecorded rows are recorded next time.
        this.consecutiveFailures++;
        delay = this.backoffDelay(this.consecutiveFailures);
        this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay round failed');
      }
      if (batch.ids.length > 0) {
        emptyPolls = 0;
        const sent = await this.send(batch);
        if (sent.ok) acknowledged = batch;
        else delay = await this.giveBack(batch, sent.error);
      } else if (delay === 0) {
        delay = Math.min(this.pollIntervalMs, FIRST_EMPTY_POLL_MS * 2 ** Math.min(emptyPolls++, 16));
      }
      if (!this.purging && this.clock.now() - this.lastPurgeAt >= this.purgeIntervalMs) await this.purgeInLane();
      if (delay > 0 && !this.stopping) await nap.sleep(delay);
    }
    this.naps.delete(nap);
    await this.recordOnStop(acknowledged);
  }

  /** One round: claim, publish, record. Exposed for tests and for a one-shot flush. */
  async relayOnce(): Promise<RelayRoundResult> {
    const batch = await this.db.transaction((em) => this.claim(em));
    const claimed = batch.ids.length;
    if (claimed === 0) return { claimed: 0, published: 0, failed: 0 };
    const sent = await this.send(batch);
    if (!sent.ok) {
      await this.giveBack(batch, sent.error);
      return { claimed, published: 0, failed: claimed };
    }
    await this.db.transaction((em) => this.recordPublished(em, batch));
    return { claimed, published: claimed, failed: 0 };
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

  /**
   * Claims publishable rows (inside the caller's transaction): the oldest unleased pending rows, cut to a
   * contiguous prefix per order, leased to us.
   */
  private async claim(em: EntityManager): Promise<Batch> {
    const now = this.clock.now();
    const candidates: CandidateRow[] = await em.query(this.candidatesSql, [now, this.batchSize]);
    if (candidates.length === 0) return NO_EVENTS;
    const claimable = await this.contiguousPrefixes(em, candidates);
    if (claimable.length === 0) return NO_EVENTS;
    const ids = claimable.map((r) => Number(r.id));
    await em.query(`UPDATE outbox_events SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id IN (${placeholders(ids.length)})`, [
      this.owner,
      now + this.leaseMs,
      ...ids,
    ]);
    return { ids, events: claimable.map((r) => this.toEvent(r)) };
  }

  /**
   * Keeps, per order, only candidates that precede the order's oldest pending event we did not get: that event
   * (leased, locked by a concurrent claim, backing off) must reach the broker first.
   */
  private async contiguousPrefixes(em: EntityManager, candidates: readonly CandidateRow[]): Promise<readonly CandidateRow[]> {
    const ids = candidates.map((c) => Number(c.id));
    const orderIds = [...new Set(candidates.map((c) => c.order_id))];
    const blocking: Array<{ order_id: string; first_id: number | string }> = await em.query(
      `SELECT order_id, MIN(id) AS first_id FROM outbox_events${this.orderIndexHint}
        WHERE status = 'pending' AND id <= ? AND order_id IN (${placeholders(orderIds.length)}) AND id NOT IN (${placeholders(ids.length)})
        GROUP BY order_id`,
      [Math.max(...ids), ...orderIds, ...ids],
    );
    if (blocking.length === 0) return candidates;
    const firstBlocked = new Map(blocking.map((b) => [b.order_id, Number(b.first_id)]));
    return candidates.filter((c) => Number(c.id) < (firstBlocked.get(c.order_id) ?? Infinity));
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

  private async recordPublished(em: EntityManager, batch: Batch): Promise<void> {
    if (batch.ids.length === 0) return;
    // Only rows still leased by us: if our lease ran out and another relay took them, it records them.
    await em.query(
      `UPDATE outbox_events SET status = 'published', published_at = ?, lease_owner = NULL, lease_until = NULL
        WHERE lease_owner = ? AND id IN (${placeholders(batch.ids.length)})`,
      [this.clock.now(), this.owner, ...batch.ids],
    );
  }

  /**
   * After a failed publish the rows stay pending with a retry-not-before instant (blocking their orders' later
   * events); returns how long this lane backs off. If even this fails (database down too), the leases run out.
   */
  private async giveBack(failed: Batch, error: unknown): Promise<number> {
    this.consecutiveFailures++;
    const delay = this.backoffDelay(this.consecutiveFailures);
    const retryAt = this.clock.now() + delay;
    try {
      await this.db.transaction((em) =>
        em.query(`UPDATE outbox_events SET lease_owner = NULL, lease_until = ? WHERE lease_owner = ? AND id IN (${placeholders(failed.ids.length)})`, [
          retryAt,
          this.owner,
          ...failed.ids,
        ]),
      );
    } catch (err) {
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay could not set the retry time; the lease runs out instead');
    }
    this.opts.logger?.warn(
      { err: describe(error), events: failed.ids.length, failures: this.consecutiveFailures, retryInMs: delay },
      'outbox publish failed; events stay pending',
    );
    this.opts.onPublishFailed?.(failed.ids.length, error);
    return delay;
  }

  /** The lane's last acknowledged batch, recorded before stop() resolves. */
  private async recordOnStop(acknowledged: Batch): Promise<void> {
    if (acknowledged.ids.length === 0) return;
    try {
      await this.db.transaction((em) => this.recordPublished(em, acknowledged));
    } catch (err) {
      // They stay pending and are published again later; consumers dedupe by event id.
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay could not record its last batch on stop');
    }
  }

  /** One lane purges while the others keep publishing. */
  private async purgeInLane(): Promise<void> {
    this.purging = true;
    const startedAt = this.clock.now();
    try {
      const purged = await this.purgeOnce();
      // A run that used its whole budget left due rows behind (more than the budget is published per interval at
      // high rates): go on at the lane's next turn instead of after the interval.
      if (purged < this.purgeBatchSize * this.purgeMaxBatches) this.lastPurgeAt = startedAt;
    } catch (err) {
      this.lastPurgeAt = startedAt;
      this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox purge failed');
    } finally {
      this.purging = false;
    }
  }

  /** Deletes published rows older than the retention, in small batches; returns how many. */
  async purgeOnce(): Promise<number> {
    const cutoff = this.clock.now() - this.retentionMs;
    let total = 0;
    for (let i = 0; i < this.purgeMaxBatches && !this.stopping; i++) {
      const { seen, deleted } = await this.db.transaction(async (em) => {
        // The oldest published rows by id, due or not: filtering on published_at in SQL would scan every published
        // row of the retention window whenever nothing is due. Ids follow publishing order but for the few rows
        // published late (retries), which only hold back the purge of the rows behind them until they are due too.
        const rows: Array<{ id: number | string; published_at: number | string }> = await em.query(
          `SELECT id, published_at FROM outbox_events WHERE status = 'published' ORDER BY id LIMIT ?`,
          [this.purgeBatchSize],
        );
        const due = rows.filter((r) => Number(r.published_at) < cutoff).map((r) => Number(r.id));
        if (due.length > 0) await em.query(`DELETE FROM outbox_events WHERE status = 'published' AND id IN (${placeholders(due.length)})`, due);
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
    const pending = await em.count(OutboxEventEntity, { where: { status: 'pending' } });
    const oldest = await em.findOne(OutboxEventEntity, { where: { status: 'pending' }, order: { id: 'ASC' } });
    return { pending, oldestPendingAgeMs: oldest ? Math.max(0, clock.now() - oldest.createdAt) : 0 };
  });
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}

function describe(err: unknown): string {
  return redactPersonalData(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
}

function placeholders(count: number): string {
  return count === 1 ? '?' : `?${',?'.repeat(count - 1)}`;
}

