/**
 * Metrics of the spine (outbox, durable work, operator exceptions, orders, refunds, circuit breakers).
 *
 * - Table gauges are computed when Prometheus scrapes, from one cheap read (a few COUNT/GROUP BY queries on
 *   indexed columns). The result is cached for `cacheMs` and concurrent scrapes share one load, so several
 *   Prometheus replicas scraping several gateway replicas do not hammer the database.
 * - The breaker gauge and the counters are pushed by the spine through the hooks returned here.
 * - Labels are bounded: statuses and states are fixed sets; free-text labels (work kind, exception kind, upstream)
 *   are sanitised and capped, and anything past the cap is counted under "other".
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { ORDER_STATES, type Clock } from '../domain/model';
import type { Database } from '../persistence/database';
import type { GatewayMetrics } from './metrics';

/** Work statuses worth watching; done/abandoned rows only grow and say nothing about health. */
export const WATCHED_WORK_STATUSES = ['pending', 'in_flight', 'parked'] as const;
/** Refund requests the supplier has not decided yet (not yet submitted, or submitted and awaiting its audit). */
export const UNDECIDED_REFUND_STATES = ['pending_submit', 'pending_audit'] as const;
/** Breaker state as a number, so a graph and `max_over_time` work: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;
export type BreakerStateName = keyof typeof BREAKER_STATE_VALUE;

const DEFAULT_CACHE_MS = 10_000;
/** Distinct values one free-text label may take before the rest is folded into "other". */
const DEFAULT_MAX_LABEL_VALUES = 32;
const OTHER = 'other';

export interface SpineMetricsOptions {
  /** How long one read of the tables serves scrapes (default 10 s). 0 reads on every scrape. */
  readonly cacheMs?: number;
  /** Cap on distinct values of a free-text label (work kind, exception kind, upstream). Default 32. */
  readonly maxLabelValues?: number;
}

/** What the tables say, at `at` (epoch ms). */
export interface SpineSnapshot {
  readonly at: number;
  readonly outboxPending: number;
  /** 0 when nothing is pending. */
  readonly outboxOldestPendingAgeSeconds: number;
  readonly workByStatus: Readonly<Record<(typeof WATCHED_WORK_STATUSES)[number], number>>;
  readonly openExceptionsByKind: ReadonlyMap<string, number>;
  readonly ordersByState: ReadonlyMap<string, number>;
  readonly refundsPendingAudit: number;
  readonly refundsPendingAuditOldestAgeSeconds: number;
}

/** What the spine calls; every hook is cheap, synchronous and never throws. */
export interface SpineMetricsHooks {
  /** For BreakerRegistry.onStateChange. */
  breakerStateChanged(upstream: string, state: BreakerStateName): void;
  /**
   * For OutboxRelay.onPublished: `count` events acknowledged by the broker; pass their `createdAt` (epoch ms) to
   * feed the created->acked lag histogram.
   */
  outboxPublished(count: number, createdAts?: readonly number[]): void;
  /** For OutboxRelay.onPublishFailed. */
  outboxPublishFailed(count: number): void;
  /** For WorkRunner.onOutcome (same argument shape). */
  workAttempt(item: { readonly kind: string }, outcome: string): void;
  /** Reads the tables now (bypassing the cache) and returns what the gauges will show. */
  refresh(): Promise<SpineSnapshot>;
}

/**
 * Registers the spine metrics on the gateway's registry and returns the hooks the spine feeds. Call once per
 * registry (prom-client refuses a second metric of the same name).
 */
export function registerSpineMetrics(metrics: GatewayMetrics, db: Database, clock: Clock, opts: SpineMetricsOptions = {}): SpineMetricsHooks {
  const registers = [metrics.registry];
  const cacheMs = Math.max(0, opts.cacheMs ?? DEFAULT_CACHE_MS);
  const maxLabels = Math.max(1, opts.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES);

  const refreshFailures = new Counter({
    name: 'spine_metrics_refresh_failures_total',
    help: 'Scrape-time reads of the spine tables that failed (the gauges then keep their last values).',
    registers,
  });

  // One load shared by every gauge of a scrape and by concurrent scrapes; a failed load is not cached.
  let cached: SpineSnapshot | undefined;
  let loading: Promise<SpineSnapshot> | undefined;
  const load = (): Promise<SpineSnapshot> => {
    loading ??= readSnapshot(db, clock, maxLabels)
      .then(
        (s) => (cached = s),
        (err: unknown) => {
          refreshFailures.inc(); // once per failed read, not once per gauge waiting on it
          throw err;
        },
      )
      .finally(() => {
        loading = undefined;
      });
    return loading;
  };
  const current = async (): Promise<SpineSnapshot | undefined> => {
    if (cached && clock.now() - cached.at < cacheMs && clock.now() >= cached.at) return cached;
    return load().catch(() => undefined);
  };

  /** A gauge computed on scrape; when the read failed it keeps showing the last values. */
  const scrapeGauge = <L extends string>(
    config: { name: string; help: string; labelNames?: readonly L[] },
    fill: (gauge: Gauge<L>, s: SpineSnapshot) => void,
  ): Gauge<L> =>
    new Gauge<L>({
      ...config,
      labelNames: config.labelNames ?? [],
      registers,
      async collect() {
        const s = await current();
        if (s) fill(this, s);
      },
    });

  scrapeGauge({ name: 'outbox_pending_events', help: 'Outbox events not yet acknowledged by Kafka.' }, (g, s) => g.set(s.outboxPending));
  scrapeGauge(
    { name: 'outbox_oldest_pending_age_seconds', help: 'Age of the oldest outbox event not yet acknowledged by Kafka (0 when none).' },
    (g, s) => g.set(s.outboxOldestPendingAgeSeconds),
  );
  scrapeGauge({ name: 'work_items', help: 'Durable outside calls by status (pending, in_flight, parked).', labelNames: ['status'] }, (g, s) => {
    for (const status of WATCHED_WORK_STATUSES) g.set({ status }, s.workByStatus[status]);
  });
  scrapeGauge({ name: 'operator_exceptions_open', help: 'Operator exceptions not yet resolved, by kind.', labelNames: ['kind'] }, (g, s) => {
    g.reset();
    for (const [kind, n] of s.openExceptionsByKind) g.set({ kind }, n);
  });
  scrapeGauge({ name: 'orders', help: 'Orders by state.', labelNames: ['state'] }, (g, s) => {
    g.reset();
    for (const [state, n] of s.ordersByState) g.set({ state }, n);
  });
  scrapeGauge(
    { name: 'refunds_pending_audit', help: 'Refund requests the supplier has not decided yet (awaiting submission or its audit).' },
    (g, s) => g.set(s.refundsPendingAudit),
  );
  scrapeGauge(
    { name: 'refunds_pending_audit_oldest_age_seconds', help: 'Age of the oldest refund request the supplier has not decided yet (0 when none).' },
    (g, s) => g.set(s.refundsPendingAuditOldestAgeSeconds),
  );

  const breakerState = new Gauge({
    name: 'circuit_breaker_state',
    help: 'Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.',
    labelNames: ['upstream'] as const,
    registers,
  });
  const publishTotal = new Counter({
    name: 'outbox_publish_total',
    help: 'Outbox events handed to Kafka, by result (ok = acknowledged, failed = left pending for a retry).',
    labelNames: ['result'] as const,
    registers,
  });
  const publishLag = new Histogram({
    name: 'outbox_publish_lag_seconds',
    help: 'Time from an outbox event being written to Kafka acknowledging it.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers,
  });
  const workAttempts = new Counter({
    name: 'work_attempts_total',
    help: 'Durable work attempts by kind and recorded outcome (done, retry, park, breaker_open, lease_lost).',
    labelNames: ['kind', 'outcome'] as const,
    registers,
  });

  const upstreams = new BoundedLabel(maxLabels);
  const kinds = new BoundedLabel(maxLabels);
  const outcomes = new BoundedLabel(8);

  return {
    breakerStateChanged(upstream, state) {
      const value = BREAKER_STATE_VALUE[state];
      if (value === undefined) return;
      breakerState.set({ upstream: upstreams.value(upstream) }, value);
    },
    outboxPublished(count, createdAts = []) {
      if (count > 0) publishTotal.inc({ result: 'ok' }, count);
      const ackedAt = clock.now();
      for (const createdAt of createdAts) {
        if (Number.isFinite(createdAt)) publishLag.observe(Math.max(0, ackedAt - createdAt) / 1000);
      }
    },
    outboxPublishFailed(count) {
      if (count > 0) publishTotal.inc({ result: 'failed' }, count);
    },
    workAttempt(item, outcome) {
      workAttempts.inc({ kind: kinds.value(item.kind), outcome: outcomes.value(outcome) });
    },
    async refresh() {
      return load();
    },
  };
}

/** Reads every table gauge in one go (on SQLite queued like a transaction, so it never sees half a write). */
export async function readSnapshot(db: Database, clock: Clock, maxLabelValues = DEFAULT_MAX_LABEL_VALUES): Promise<SpineSnapshot> {
  return db.read(async (em) => {
    const at = clock.now();
    const ageSeconds = (createdAt: unknown) => (createdAt === null || createdAt === undefined ? 0 : Math.max(0, at - Number(createdAt)) / 1000);

    const [outboxCount] = await em.query(`SELECT COUNT(*) AS n FROM outbox_pending`);
    // The relay publishes in id order, so the lowest queued id is the oldest waiting (a primary key seek).
    const [outboxOldest] = await em.query(`SELECT e.created_at AS t FROM outbox_pending p JOIN outbox_events e ON e.id = p.id ORDER BY p.id LIMIT 1`);

    const workRows: Array<{ status: string; n: unknown }> = await em.query(
      `SELECT status, COUNT(*) AS n FROM work_items WHERE status IN ('pending', 'in_flight', 'parked') GROUP BY status`,
    );
    const workByStatus = { pending: 0, in_flight: 0, parked: 0 };
    for (const r of workRows) if (r.status in workByStatus) workByStatus[r.status as keyof typeof workByStatus] = Number(r.n);

    const exceptionRows: Array<{ kind: string; n: unknown }> = await em.query(
      `SELECT kind, COUNT(*) AS n FROM operator_exceptions WHERE resolved_at IS NULL GROUP BY kind`,
    );
    const exceptions = new BoundedLabel(maxLabelValues);
    const openExceptionsByKind = new Map<string, number>();
    // Largest kinds keep their own label when there are too many.
    for (const r of [...exceptionRows].sort((a, b) => Number(b.n) - Number(a.n))) {
      const kind = exceptions.value(r.kind);
      openExceptionsByKind.set(kind, (openExceptionsByKind.get(kind) ?? 0) + Number(r.n));
    }

    const stateRows: Array<{ state: string; n: unknown }> = await em.query(`SELECT state, COUNT(*) AS n FROM orders GROUP BY state`);
    const ordersByState = new Map<string, number>(ORDER_STATES.map((s) => [s, 0]));
    for (const r of stateRows) {
      const state = ordersByState.has(r.state) ? r.state : OTHER;
      ordersByState.set(state, (ordersByState.get(state) ?? 0) + Number(r.n));
    }

    const [refunds] = await em.query(
      `SELECT COUNT(*) AS n, MIN(created_at) AS t FROM refund_requests WHERE audit_state IN ('pending_submit', 'pending_audit')`,
    );

    return {
      at,
      outboxPending: Number(outboxCount?.n ?? 0),
      outboxOldestPendingAgeSeconds: ageSeconds(outboxOldest?.t),
      workByStatus,
      openExceptionsByKind,
      ordersByState,
      refundsPendingAudit: Number(refunds?.n ?? 0),
      refundsPendingAuditOldestAgeSeconds: ageSeconds(refunds?.t),
    };
  });
}

/**
 * Keeps a free-text label bounded: values are trimmed to a safe charset and length, the first `max` distinct
 * values keep their name, later ones become "other".
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}

  value(raw: string): string {
    const clean = String(raw)
      .replace(/[^A-Za-z0-9_.:\-]/g, '_')
      .slice(0, 64);
    if (clean === '') return OTHER;
    if (this.seen.has(clean)) return clean;
    if (this.seen.size >= this.max) return OTHER;
    this.seen.add(clean);
    return clean;
  }
}
