/**
 * Spine metrics on SQLite and MariaDB: the scrape-time gauges reflect rows really in the tables, the cache holds
 * values for its window only, the hooks feed their counters, labels stay bounded, a failed read does not fail
 * the scrape.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityManager } from 'typeorm';
import { OrderState, ORDER_STATES } from '../../src/domain/model';
import { newLedger } from '../../src/domain/ledger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { registerSpineMetrics } from '../../src/observability/spine-metrics';
import { OrderRepository } from '../../src/persistence/order-repository';
import { OutboxEventEntity, OutboxPendingEntity } from '../../src/persistence/entities/outbox-event.entity';
import { WorkItemEntity, type WorkItemStatus } from '../../src/persistence/entities/work-item.entity';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { RefundRequestEntity, type RefundAuditState } from '../../src/persistence/entities/refund-request.entity';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';

const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);
const HOUR = 3_600_000;

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

async function samples(metrics: GatewayMetrics, name: string): Promise<Sample[]> {
  const all = (await metrics.registry.getMetricsAsJSON()) as Array<{ name: string; values: Sample[] }>;
  const m = all.find((x) => x.name === name);
  assert.ok(m, `metric ${name} is registered`);
  return m.values;
}

async function value(metrics: GatewayMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const found = (await samples(metrics, name)).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches one series`);
  return found[0]?.value;
}

let seq = 0;
/** An outbox event row, and its queue entry when it is still pending (as appendEvent writes them). */
async function insertOutboxEvent(em: EntityManager, createdAt: number, status: 'pending' | 'published'): Promise<void> {
  seq++;
  const inserted = await em.insert(OutboxEventEntity, {
    eventId: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    orderId: 'o_metrics',
    topic: 'order-events',
    type: 'order.issued',
    schemaVersion: 1,
    payload: '',
    createdAt,
  });
  if (status === 'pending') await em.insert(OutboxPendingEntity, { id: Number(inserted.identifiers[0]!.id), attempts: 0, retryAt: null });
}

function workRow(status: WorkItemStatus, kind = 'taobao.send'): Partial<WorkItemEntity> {
  seq++;
  return {
    idempotencyKey: `metrics-${seq}`,
    orderId: null,
    kind,
    upstream: 'taobao',
    payload: '{}',
    status,
    attempts: 0,
    nextAttemptAt: T0,
    leaseOwner: null,
    leaseUntil: null,
    lastError: null,
    createdAt: T0,
    updatedAt: T0,
  };
}

function refundRow(auditState: RefundAuditState, createdAt: number): Partial<RefundRequestEntity> {
  seq++;
  return {
    id: `r_metrics_${seq}`,
    orderId: 'o_metrics',
    quantity: 1,
    fromBucket: 'available',
    origin: 'internal',
    callerRequestId: null,
    supplierBatchNo: null,
    auditState,
    buyerRefundFen: null,
    rejectReason: null,
    createdAt,
    updatedAt: createdAt,
  };
}

async function insertOrder(orders: OrderRepository, i: number, state: OrderState): Promise<void> {
  await orders.insert({
    taobaoOrderId: `9925658026040${String(i).padStart(3, '0')}`,
    token: `tok${i}`,
    outerIid: 'YZY-ADULT',
    itemTitle: '银子岩门票',
    unitPriceFen: 8800,
    totalFeeFen: 8800,
    noticeType: 0,
    mobileMasked: '138****5678',
    validStart: T0,
    validEnd: T0 + 24 * HOUR,
    supplier: 'zhiyoubao',
    supplierOrderId: null,
    state,
    ledger: newLedger(1),
    createdAt: T0 + i,
  });
}

for (const kind of DATABASE_KINDS) {
  test(`spine gauges on ${kind} reflect the rows in the tables, cached for the window only`, { timeout: 90_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    let now = T0;
    const clock = { now: () => now };
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const hooks = registerSpineMetrics(metrics, tdb.db, clock, { cacheMs: 5_000, maxLabelValues: 3 });
    let dropped = false;
    try {
      // Empty tables: every gauge is there, at zero; every order state is listed.
      assert.equal(await value(metrics, 'outbox_pending_events'), 0);
      assert.equal(await value(metrics, 'outbox_oldest_pending_age_seconds'), 0);
      for (const status of ['pending', 'in_flight', 'parked']) assert.equal(await value(metrics, 'work_items', { status }), 0);
      assert.deepEqual(await samples(metrics, 'operator_exceptions_open'), []);
      assert.deepEqual((await samples(metrics, 'orders')).map((s) => s.labels.state).sort(), [...ORDER_STATES].sort());
      assert.equal(await value(metrics, 'refunds_pending_audit'), 0);
      assert.equal(await value(metrics, 'refunds_pending_audit_oldest_age_seconds'), 0);

      const orders = new OrderRepository(tdb.db);
      await insertOrder(orders, 1, OrderState.Issued);
      await insertOrder(orders, 2, OrderState.Issued);
      await insertOrder(orders, 3, OrderState.RefundPendingAudit);
      await tdb.db.transaction(async (em: EntityManager) => {
        await insertOutboxEvent(em, T0 - 500_000, 'published');
        await insertOutboxEvent(em, T0 - 120_000, 'pending');
        await insertOutboxEvent(em, T0 - 30_000, 'pending');
        await insertOutboxEvent(em, T0 - 1_000, 'pending');
        for (const s of ['pending', 'pending', 'in_flight', 'parked', 'done', 'abandoned'] as const) await em.insert(WorkItemEntity, workRow(s));
        const exc = (k: string, resolvedAt: number | null) => em.insert(OperatorExceptionEntity, { kind: k, orderId: null, detail: 'x', createdAt: T0, resolvedAt });
        await exc('work_parked', null);
        await exc('work_parked', null);
        await exc('work_parked', T0);
        await exc('unmapped_supplier_state', null);
        await em.insert(RefundRequestEntity, refundRow('approved', T0 - 10 * HOUR));
        await em.insert(RefundRequestEntity, refundRow('pending_audit', T0 - 3 * HOUR));
        await em.insert(RefundRequestEntity, refundRow('pending_submit', T0 - HOUR));
        await em.insert(RefundRequestEntity, refundRow('rejected', T0 - 20 * HOUR));
      });

      // Still inside the cache window: the empty read is what a scrape sees.
      now = T0 + 4_999;
      assert.equal(await value(metrics, 'outbox_pending_events'), 0, 'cached');

      now = T0 + 5_000;
      assert.equal(await value(metrics, 'outbox_pending_events'), 3);
      assert.equal(await value(metrics, 'outbox_oldest_pending_age_seconds'), 125, 'oldest pending row, not the published one');
      assert.equal(await value(metrics, 'work_items', { status: 'pending' }), 2);
      assert.equal(await value(metrics, 'work_items', { status: 'in_flight' }), 1);
      assert.equal(await value(metrics, 'work_items', { status: 'parked' }), 1);
      assert.equal(await value(metrics, 'operator_exceptions_open', { kind: 'work_parked' }), 2, 'resolved ones not counted');
      assert.equal(await value(metrics, 'operator_exceptions_open', { kind: 'unmapped_supplier_state' }), 1);
      assert.equal(await value(metrics, 'orders', { state: OrderState.Issued }), 2);
      assert.equal(await value(metrics, 'orders', { state: OrderState.RefundPendingAudit }), 1);
      assert.equal(await value(metrics, 'orders', { state: OrderState.Expired }), 0);
      assert.equal(await value(metrics, 'refunds_pending_audit'), 2, 'pending_submit and pending_audit; decided ones not');
      assert.equal(await value(metrics, 'refunds_pending_audit_oldest_age_seconds'), 3 * 3600 + 5);

      // Rows leave: the oldest pending event is published, an exception kind is resolved away entirely.
      await tdb.db.transaction(async (em: EntityManager) => {
        const oldest = await em.findOneOrFail(OutboxPendingEntity, { where: {}, order: { id: 'ASC' } });
        await em.delete(OutboxPendingEntity, { id: oldest.id });
        await em.update(OperatorExceptionEntity, { kind: 'unmapped_supplier_state' }, { resolvedAt: T0 });
        await em.update(WorkItemEntity, { status: 'parked' }, { status: 'abandoned' });
      });
      const snap = await hooks.refresh();
      assert.equal(snap.outboxPending, 2);
      now = T0 + 5_001; // refresh() filled the cache at T0 + 5 000
      assert.equal(await value(metrics, 'outbox_pending_events'), 2);
      assert.equal(await value(metrics, 'outbox_oldest_pending_age_seconds'), 35);
      assert.equal(await value(metrics, 'work_items', { status: 'parked' }), 0);
      assert.equal(await value(metrics, 'operator_exceptions_open', { kind: 'unmapped_supplier_state' }), undefined, 'a kind with none open disappears');
      assert.equal(await value(metrics, 'operator_exceptions_open', { kind: 'work_parked' }), 2);

      // Too many exception kinds: the largest keep their label (cap 3 here), the rest are summed into "other".
      await tdb.db.transaction(async (em: EntityManager) => {
        for (const k of ['k_a', 'k_a', 'k_a', 'k_b', 'k_b', 'k_c', 'k_d']) {
          await em.insert(OperatorExceptionEntity, { kind: k, orderId: null, detail: 'x', createdAt: T0, resolvedAt: null });
        }
      });
      await hooks.refresh();
      const byKind = Object.fromEntries((await samples(metrics, 'operator_exceptions_open')).map((s) => [s.labels.kind, s.value]));
      assert.deepEqual(byKind, { k_a: 3, work_parked: 2, k_b: 2, other: 2 });

      // The database goes away: the scrape still answers, with the last values, and the failure is counted.
      await tdb.drop();
      dropped = true;
      now = T0 + 60_000;
      const text = await metrics.registry.metrics();
      assert.match(text, /^outbox_pending_events 2$/m);
      assert.match(text, /^work_items\{status="pending"\} 2$/m);
      const failures = await metrics.registry.getSingleMetric('spine_metrics_refresh_failures_total')!.get();
      assert.equal(failures.values[0]?.value, 1, 'one failed read per scrape, shared by every gauge');
    } finally {
      if (!dropped) await tdb.drop();
    }
  });
}

test('spine hooks: breaker state, outbox publish results and lag, work attempts; labels bounded', async () => {
  const tdb = await openTestDatabase('sqlite');
  const now = T0;
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const hooks = registerSpineMetrics(metrics, tdb.db, { now: () => now }, { maxLabelValues: 3 });
  try {
    hooks.breakerStateChanged('supplier:zhiyoubao', 'open');
    hooks.breakerStateChanged('taobao', 'closed');
    assert.equal(await value(metrics, 'circuit_breaker_state', { upstream: 'supplier:zhiyoubao' }), 2);
    assert.equal(await value(metrics, 'circuit_breaker_state', { upstream: 'taobao' }), 0);
    hooks.breakerStateChanged('supplier:zhiyoubao', 'half_open');
    assert.equal(await value(metrics, 'circuit_breaker_state', { upstream: 'supplier:zhiyoubao' }), 1);
    hooks.breakerStateChanged('supplier:zhiyoubao', 'closed');
    assert.equal(await value(metrics, 'circuit_breaker_state', { upstream: 'supplier:zhiyoubao' }), 0);

    hooks.outboxPublished(3, [T0 - 2_000, T0 - 500, T0]);
    hooks.outboxPublished(2);
    hooks.outboxPublishFailed(4);
    hooks.outboxPublishFailed(0);
    assert.equal(await value(metrics, 'outbox_publish_total', { result: 'ok' }), 5);
    assert.equal(await value(metrics, 'outbox_publish_total', { result: 'failed' }), 4);
    const lag = await samples(metrics, 'outbox_publish_lag_seconds');
    assert.equal(lag.find((s) => s.metricName === 'outbox_publish_lag_seconds_count')?.value, 3);
    assert.equal(lag.find((s) => s.metricName === 'outbox_publish_lag_seconds_sum')?.value, 2.5);
    assert.equal(lag.find((s) => s.metricName === 'outbox_publish_lag_seconds_bucket' && s.labels.le === 1)?.value, 2);

    hooks.workAttempt({ kind: 'taobao.send' }, 'done');
    hooks.workAttempt({ kind: 'taobao.send' }, 'done');
    hooks.workAttempt({ kind: 'taobao.send' }, 'retry');
    hooks.workAttempt({ kind: 'supplier.issue' }, 'park');
    assert.equal(await value(metrics, 'work_attempts_total', { kind: 'taobao.send', outcome: 'done' }), 2);
    assert.equal(await value(metrics, 'work_attempts_total', { kind: 'taobao.send', outcome: 'retry' }), 1);
    assert.equal(await value(metrics, 'work_attempts_total', { kind: 'supplier.issue', outcome: 'park' }), 1);

    // A flood of distinct kinds never grows the series past the cap; odd characters are neutralised.
    for (let i = 0; i < 50; i++) hooks.workAttempt({ kind: `kind-${i} {"x"}` }, 'done');
    const kinds = new Set((await samples(metrics, 'work_attempts_total')).map((s) => String(s.labels.kind)));
    assert.deepEqual([...kinds].sort(), ['kind-0___x__', 'other', 'supplier.issue', 'taobao.send']);
  } finally {
    await tdb.drop();
  }
});
