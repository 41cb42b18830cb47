/**
 * Reconciliation against real outside peers: the Lianhe simulator (signed HTTP, its own order book) and the TOP
 * simulator (codes.get), through the admin RPC RunReconciliation on a real gRPC server and the scheduled job.
 * A missed supplier admission is healed through the supplier-admission path; other drifts become operator
 * exceptions + exception.raised events; every drift is counted in reconciliation_drift_total{kind}.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { systemClock, OrderState } from '../../src/domain/model';
import { admit } from '../../src/domain/order';
import {
  ReconciliationServiceClient,
  ReconciliationServiceService,
  RunReconciliationRequest,
  type OrderReconciliation,
  type RunReconciliationResponse,
} from '../../src/gen/ticketgateway/admin/v1/reconciliation';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { mutateOrder } from '../../src/orders/order-store';
import { listOrderEvents } from '../../src/outbox/outbox';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { WriteOffEntity } from '../../src/persistence/entities/write-off.entity';
import { Reconciler, RECONCILIATION_DRIFT } from '../../src/reconciliation/reconciler';
import { reconciliationServiceHandlers } from '../../src/reconciliation/reconciliation-admin-service';
import { UNMAPPED_OUTSIDE_STATE } from '../../src/state-mapping/unmapped-states';
import { LianheAdapter } from '../../src/suppliers/lianhe/lianhe-adapter';
import { StaticSupplierDirectory } from '../../src/suppliers/supplier-directory';
import { TopClient } from '../../src/taobao/top-client';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { unary } from '../support/grpc-clients';
import { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import { TopSimulator } from '../support/top-simulator';
import { issued, TOP_IDENTITY, type World } from './lianhe-order-fixture';

const kinds = (o: OrderReconciliation | undefined) => (o?.drifts ?? []).map((d) => d.kind).sort();

for (const kind of DATABASE_KINDS) {
  test(`${kind}: RunReconciliation reports drift, heals a missed supplier admission, raises the rest for operators`, { timeout: 90_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    const sim = await new LianheSimulator().start();
    const top = new TopSimulator(TOP_IDENTITY);
    await top.start();
    const lianhe = new LianheAdapter({ instanceCode: 'lh-test', baseUrl: sim.baseUrl, partnerId: sim.partnerId, apiName: sim.apiName, clientSecret: sim.clientSecret });
    const topClient = new TopClient({ routerUrl: top.url, ...TOP_IDENTITY });
    const w: World = { db: tdb.db, lianhe, sim, top, topClient };
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const reconciler = new Reconciler({ db: tdb.db, clock: systemClock, suppliers: new StaticSupplierDirectory([lianhe]), taobao: topClient, metrics, batchSize: 2 });
    const grpc = new GrpcServer(createLogger('silent'), metrics);
    grpc.addService(ReconciliationServiceService, reconciliationServiceHandlers({ db: tdb.db, reconciler }));
    const port = await grpc.listen(0, '127.0.0.1');
    const client = new ReconciliationServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    const run = (p: Partial<RunReconciliationRequest>) => unary<RunReconciliationRequest, RunReconciliationResponse>(client, 'runReconciliation', RunReconciliationRequest.fromPartial(p));
    const driftMetric = async (k: string) => (await metrics.reconciliationDrift.get()).values.find((v) => v.labels.kind === k)?.value ?? 0;
    try {
      const inStep = await issued(w, 2);
      const missed = await issued(w, 3);
      sim.admit(missed.orderId, 2); // seen at the supplier's own gate; its snNotify never reached us
      const oursOnly = await issued(w, 2);
      await tdb.db.transaction(async (em) => {
        const r = await mutateOrder(em, oursOnly.orderId, Date.now(), (o) => admit(o, 1, Date.now(), 'serial-ours-only'));
        assert.ok(r.ok);
      });
      const consumedAtTaobao = await issued(w, 2);
      const consumed = await topClient.consume({ orderId: consumedAtTaobao.taobaoOrderId, verifyCode: consumedAtTaobao.code, consumeNum: 1, token: 'tk', posid: 'POS-1', serialNum: 'tb_only_1' });
      assert.equal(consumed.kind, 'ok');
      const strange = await issued(w, 1);
      sim.mustOrder(strange.orderId).status = 42; // a code no table knows
      const noCode = await issued(w, 1, { sendCodeToTaobao: false });

      // One order, in step.
      const one = (await run({ orderId: inStep.orderId })).report!;
      assert.equal(one.ordersChecked, 1);
      assert.equal(one.ordersInStep, 1);
      assert.deepEqual(one.orders, []);
      assert.deepEqual(one.driftCounts, {});

      // The missed admission: healed through the normal path.
      const healedRun = (await run({ orderId: missed.orderId })).report!;
      assert.equal(healedRun.healed, 1);
      const h = healedRun.orders[0]!;
      assert.deepEqual(kinds(h), ['SUPPLIER_USED_MORE']);
      assert.equal(h.drifts[0]!.healed, true);
      assert.deepEqual([h.drifts[0]!.ours, h.drifts[0]!.theirs], [0, 2]);
      assert.deepEqual(h.ours, { purchased: 3, used: 2, refunded: 0, remaining: 1 });
      assert.deepEqual(h.supplierCounts, { purchased: 3, used: 2, refunded: 0, remaining: 1 });
      assert.equal(h.supplierState, '8');
      assert.equal(h.supplierNeutralStatus, 'partially_used');
      assert.equal(h.taobaoRemaining, 3, 'the consume to Taobao is still on its way (write-off work)');
      const order = await tdb.db.read((em) => em.findOneByOrFail(OrderEntity, { id: missed.orderId }));
      assert.equal(order.consumed, 2);
      assert.equal(order.state, OrderState.PartiallyConsumed);
      const writeOffs = await tdb.db.read((em) => em.find(WriteOffEntity, { where: { orderId: missed.orderId } }));
      assert.deepEqual(writeOffs.map((x) => [x.source, x.state]), writeOffs.map(() => ['supplier', 'recorded']));
      assert.equal(writeOffs.reduce((s, x) => s + x.count, 0), 2);
      assert.ok((await tdb.db.read((em) => listOrderEvents(em, missed.orderId))).some((e) => e.type === 'write-off.recorded'));
      // Run again: nothing left to heal, nothing healed twice.
      const again = (await run({ orderId: missed.orderId })).report!;
      assert.equal(again.ordersInStep, 1, JSON.stringify(again.orders));
      assert.equal((await tdb.db.read((em) => em.findOneByOrFail(OrderEntity, { id: missed.orderId }))).consumed, 2);

      // A batch over everything (round robin in pages of 2 by default; here 10 at once).
      const batch = (await run({ batchSize: 10 })).report!;
      assert.equal(batch.ordersChecked, 6);
      const byId = new Map(batch.orders.map((o) => [o.orderId, o]));
      assert.deepEqual(kinds(byId.get(oursOnly.orderId)), ['SUPPLIER_USED_LESS']);
      assert.deepEqual(kinds(byId.get(consumedAtTaobao.orderId)), ['TAOBAO_CONSUMED_MISMATCH']);
      const tb = byId.get(consumedAtTaobao.orderId)!.drifts[0]!;
      assert.deepEqual([tb.ours, tb.theirs, tb.healed], [0, 1, false]);
      assert.deepEqual(kinds(byId.get(strange.orderId)), ['UNMAPPED_STATE']);
      assert.deepEqual(kinds(byId.get(noCode.orderId)), ['TAOBAO_CODE_MISSING']);
      assert.ok(!byId.has(inStep.orderId) && !byId.has(missed.orderId));
      assert.equal(batch.ordersInStep, 2);
      assert.deepEqual(batch.driftCounts, { SUPPLIER_USED_LESS: 1, TAOBAO_CONSUMED_MISMATCH: 1, UNMAPPED_STATE: 1, TAOBAO_CODE_MISSING: 1 });
      assert.equal(batch.stateMappingVersion, 1);

      // Left to operators: exceptions + events (not repeated on the next run while open).
      await run({ orderId: oursOnly.orderId });
      const drifts = await tdb.db.read((em) => em.find(OperatorExceptionEntity, { where: { kind: RECONCILIATION_DRIFT }, order: { id: 'ASC' } }));
      assert.deepEqual(drifts.map((d) => d.orderId).sort(), [oursOnly.orderId, consumedAtTaobao.orderId, noCode.orderId].sort());
      assert.match(drifts.find((d) => d.orderId === oursOnly.orderId)!.detail, /SUPPLIER_USED_LESS/);
      const events = await tdb.db.read((em) => listOrderEvents(em, oursOnly.orderId));
      assert.deepEqual(events.filter((e) => e.type === 'exception.raised').map((e) => e.event.exceptionRaised!.kind), [RECONCILIATION_DRIFT]);
      const unmapped = await tdb.db.read((em) => em.find(OperatorExceptionEntity, { where: { kind: UNMAPPED_OUTSIDE_STATE } }));
      assert.deepEqual(unmapped.map((u) => u.orderId), [strange.orderId]);
      assert.equal((await metrics.unmappedOutsideStates.get()).values.find((v) => v.labels.system === 'lianhe')?.value, 1);

      assert.equal(await driftMetric('SUPPLIER_USED_MORE'), 1);
      assert.equal(await driftMetric('SUPPLIER_USED_LESS'), 2);
      assert.equal(await driftMetric('TAOBAO_CONSUMED_MISMATCH'), 1);

      await assert.rejects(run({ orderId: 'o_nope' }), (e: { code: number }) => e.code === 5);
    } finally {
      client.close();
      await grpc.close(0);
      await reconciler.stop();
      await top.stop();
      await sim.close();
      await tdb.drop();
    }
  });
}

test('the scheduled job goes round the orders in batches and stops cleanly; a supplier outage is a problem, not drift', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  const sim = await new LianheSimulator().start();
  const top = new TopSimulator(TOP_IDENTITY);
  await top.start();
  const lianhe = new LianheAdapter({ instanceCode: 'lh-test', baseUrl: sim.baseUrl, partnerId: sim.partnerId, apiName: sim.apiName, clientSecret: sim.clientSecret, timeoutMs: 2000 });
  const topClient = new TopClient({ routerUrl: top.url, ...TOP_IDENTITY });
  const w: World = { db: tdb.db, lianhe, sim, top, topClient };
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const reconciler = new Reconciler({ db: tdb.db, clock: systemClock, suppliers: new StaticSupplierDirectory([lianhe]), taobao: topClient, metrics, batchSize: 2 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await issued(w, 2)).orderId);
    sim.admit(ids[2]!, 1);
    const b1 = await reconciler.runBatch();
    const b2 = await reconciler.runBatch();
    assert.equal(b1.ordersChecked, 2);
    assert.equal(b2.ordersChecked, 2, 'wraps around');
    assert.equal(b1.healed + b2.healed, 1, 'the third order healed in its turn');

    // The job: runs on its own, counts drift, stops.
    sim.admit(ids[0]!, 1);
    reconciler.start(30);
    for (let i = 0; i < 200; i++) {
      const v = (await metrics.reconciliationDrift.get()).values.find((x) => x.labels.kind === 'SUPPLIER_USED_MORE')?.value ?? 0;
      if (v >= 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await reconciler.stop();
    assert.equal((await tdb.db.read((em) => em.findOneByOrFail(OrderEntity, { id: ids[0]! }))).consumed, 1, 'healed by the scheduled run');

    // The supplier is down: reported as a problem for that order, not as drift.
    await sim.close();
    const down = await new Reconciler({ db: tdb.db, clock: systemClock, suppliers: new StaticSupplierDirectory([lianhe]), metrics, callTimeoutMs: 2000 }).reconcileOrders([ids[1]!]);
    assert.equal(down.ordersWithProblems, 1);
    assert.deepEqual(down.orders[0]!.drifts, []);
    assert.match(down.orders[0]!.problems[0]!, /supplier queryOrder failed/);
  } finally {
    await reconciler.stop();
    await top.stop();
    await sim.close();
    await tdb.drop();
  }
});
