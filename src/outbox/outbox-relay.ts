/**
 * Publishes outbox rows to the broker, at least once, in order per order.
 *
 * - Claim: the oldest pending rows not leased by anyone (MySQL: `FOR UPDATE SKIP LOCKED` at READ COMMITTED, so
 *   several relays/replicas share the table; SQLite: one process, transactions queued). Of those, only a
 *   contiguous prefix of each order's pending events is taken: if an earlier event of the order is leased by
 *   another relay or waiting for its retry, the later ones wait too. No "last id seen" cursor: the table's
 *   status is the only truth, so a crash loses nothing.
 * - Publish through the EventPublisher (acks=all, key = order id, event id/type headers), in id order.
 * - Success: rows become `published`. Failure: rows stay `pending`, their lease turns into a retry-not-before
 *   instant with exponential backoff; the loop backs off too.
 * - Purge: `published` rows older than the retention are deleted in small batches.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { In, type EntityManager } from 'typeorm';
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
  /** Sleep when there was nothing to publish (default 200 ms). */
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

  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly nap = new InterruptibleSleep();
  private consecutiveFailures = 0;
  private lastPurgeAt = 0;

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

  /** Stops claiming, waits for the batch in flight (bounded by the publisher's deadline), then resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.nap.wake();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let delay = this.pollIntervalMs;
      try {
        const round = await this.relayOnce();
        if (round.failed > 0) delay = this.backoffDelay(this.consecutiveFailures);
        else if (round.claimed >= this.batchSize) delay = 0; // more is waiting
        if (this.clock.now() - this.lastPurgeAt >= this.purgeIntervalMs) {
          this.lastPurgeAt = this.clock.now();
          await this.purgeOnce();
        }
      } catch (err) {
        // The database itself failed (down, deadlock): back off, the rows are safe where they are.
        this.consecutiveFailures++;
        delay = this.backoffDelay(this.consecutiveFailures);
        this.opts.logger?.error({ err: describe(err), owner: this.owner }, 'outbox relay round failed');
      }
      if (delay > 0 && !this.stopping) await this.nap.sleep(delay);
    }
  }

  /** One round: claim, publish, record. Exposed for tests and for a one-shot flush. */
  async relayOnce(): Promise<RelayRoundResult> {
    const rows = await this.claim();
    if (rows.length === 0) return { claimed: 0, published: 0, failed: 0 };
    const events: OutgoingEvent[] = rows.map((r) => ({
      topic: `${this.topicPrefix}${r.topic}`,
      key: r.orderId,
      eventId: r.eventId,
      type: r.type,
      schemaVersion: r.schemaVersion,
      value: Buffer.from(r.payload, 'base64'),
      createdAt: r.createdAt,
      contentType: ORDER_EVENT_CONTENT_TYPE,
    }));
    const ids = rows.map((r) => r.id);
    try {
      await this.publisher.publish(events);
    } catch (err) {
      this.consecutiveFailures++;
      const retryAt = this.clock.now() + this.backoffDelay(this.consecutiveFailures);
      await this.db.transaction((em) =>
        em.update(OutboxEventEntity, { id: In(ids), leaseOwner: this.owner }, { leaseOwner: null, leaseUntil: retryAt }),
      );
      this.opts.logger?.warn(
        { err: describe(err), events: rows.length, failures: this.consecutiveFailures, retryInMs: retryAt - this.clock.now() },
        'outbox publish failed; events stay pending',
      );
      this.opts.onPublishFailed?.(rows.length, err);
      return { claimed: rows.length, published: 0, failed: rows.length };
    }
    this.consecutiveFailures = 0;
    const now = this.clock.now();
    await this.db.transaction((em) =>
      // Only rows still leased by us: if our lease ran out and another relay took them, it records them.
      em.update(OutboxEventEntity, { id: In(ids), leaseOwner: this.owner }, { status: 'published', publishedAt: now, leaseOwner: null, leaseUntil: null }),
    );
    this.opts.onPublished?.(rows.length, rows.map((r) => r.createdAt));
    return { claimed: rows.length, published: rows.length, failed: 0 };
  }

  /** Claims publishable rows: the oldest unleased pending rows, cut to a contiguous prefix per order. */
  private claim(): Promise<OutboxEventEntity[]> {
    return this.db.transaction(async (em) => {
      const now = this.clock.now();
      let q = em
        .createQueryBuilder(OutboxEventEntity, 'e')
        .where('e.status = :pending', { pending: 'pending' })
        .andWhere('(e.leaseUntil IS NULL OR e.leaseUntil <= :now)', { now })
        .orderBy('e.id', 'ASC')
        .limit(this.batchSize);
      if (this.db.supportsSkipLocked) q = q.setLock('pessimistic_write').setOnLocked('skip_locked');
      const candidates = await q.getMany();
      if (candidates.length === 0) return [];

      const claimable = await this.contiguousPrefixes(em, candidates);
      if (claimable.length === 0) return [];
      await em.update(
        OutboxEventEntity,
        { id: In(claimable.map((r) => r.id)) },
        { leaseOwner: this.owner, leaseUntil: now + this.leaseMs, attempts: () => 'attempts + 1' },
      );
      return claimable;
    });
  }

  /**
   * Keeps, per order, only candidates that directly follow the order's oldest pending event: an earlier pending
   * event we did not get (leased elsewhere, locked by a concurrent claim, backing off) blocks the rest.
   */
  private async contiguousPrefixes(em: EntityManager, candidates: OutboxEventEntity[]): Promise<OutboxEventEntity[]> {
    const byId = new Map(candidates.map((c) => [Number(c.id), c]));
    const orderIds = [...new Set(candidates.map((c) => c.orderId))];
    const maxId = Math.max(...byId.keys());
    const pending = await em
      .createQueryBuilder(OutboxEventEntity, 'e')
      .select(['e.id', 'e.orderId'])
      .where('e.status = :pending', { pending: 'pending' })
      .andWhere('e.orderId IN (:...orderIds)', { orderIds })
      .andWhere('e.id <= :maxId', { maxId })
      .orderBy('e.id', 'ASC')
      .getMany();
    const blocked = new Set<string>();
    const keep = new Set<number>();
    for (const row of pending) {
      if (blocked.has(row.orderId)) continue;
      if (byId.has(Number(row.id))) keep.add(Number(row.id));
      else blocked.add(row.orderId);
    }
    return candidates.filter((c) => keep.has(Number(c.id))).map((c) => Object.assign(c, { id: Number(c.id) }));
  }

  /** Deletes published rows older than the retention, in small batches; returns how many. */
  async purgeOnce(): Promise<number> {
    const cutoff = this.clock.now() - this.retentionMs;
    let total = 0;
    for (let i = 0; i < this.purgeMaxBatches && !this.stopping; i++) {
      const deleted = await this.db.transaction(async (em) => {
        const rows = await em
          .createQueryBuilder(OutboxEventEntity, 'e')
          .select(['e.id'])
          .where('e.status = :published', { published: 'published' })
          .andWhere('e.publishedAt < :cutoff', { cutoff })
          .orderBy('e.id', 'ASC')
          .limit(this.purgeBatchSize)
          .getMany();
        if (rows.length === 0) return 0;
        await em.delete(OutboxEventEntity, { id: In(rows.map((r) => r.id)), status: 'published' });
        return rows.length;
      });
      total += deleted;
      if (deleted < this.purgeBatchSize) break;
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
