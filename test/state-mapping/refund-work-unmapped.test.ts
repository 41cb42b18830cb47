/**
 * Where refund work reads an outside state: Lianhe refuses a refund and reports an orderStatus no table knows.
 * The work item parks (nothing is adopted) and the state is raised for operators with its metric.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '../../src/domain/model';
import { GatewayMetrics } from '../../src/observability/metrics';
import { listOrderEvents } from '../../src/outbox/outbox';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { RefundService } from '../../src/refunds/refund-service';
import { raiseUnknownSupplierState, UNMAPPED_OUTSIDE_STATE } from '../../src/state-mapping/unmapped-states';
import { LianheAdapter } from '../../src/suppliers/lianhe/lianhe-adapter';
import { TopClient } from '../../src/taobao/top-client';
import { openTestDatabase } from '../support/database';
import { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import { TopSimulator } from '../support/top-simulator';
import { directoryOf, drain, ledger, refundRunner, TestClock, workItems } from '../refunds/refund-fixtures';
import { issued, TOP_IDENTITY } from '../reconciliation/lianhe-order-fixture';

test('an unknown orderStatus in a Lianhe refund refusal parks the work and is raised as unmapped', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  const sim = await new LianheSimulator().start();
  const top = new TopSimulator(TOP_IDENTITY);
  await top.start();
  try {
    const lianhe = new LianheAdapter({ instanceCode: 'lh-test', baseUrl: sim.baseUrl, partnerId: sim.partnerId, apiName: sim.apiName, clientSecret: sim.clientSecret });
    const { orderId } = await issued({ db: tdb.db, lianhe, sim, top, topClient: new TopClient({ routerUrl: top.url, ...TOP_IDENTITY }) }, 2);
    // At Lianhe everything was used meanwhile, and its order is in a state nobody documented.
    sim.admit(orderId, 2);
    sim.mustOrder(orderId).status = 31;

    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const mapping = { clock: systemClock, counter: metrics.unmappedOutsideStates };
    const cancel = await new RefundService({ db: tdb.db, clock: systemClock }).cancelOrder({ orderId, quantity: 1, callerRequestId: 'r-unmapped' });
    assert.ok(cancel.ok);
    const runner = refundRunner(tdb.db, new TestClock(Date.now()), {
      suppliers: directoryOf(lianhe),
      onUnknownState: (em, err, id) => raiseUnknownSupplierState(em, err, id, mapping),
    });
    await drain(runner);

    const items = await workItems(tdb.db);
    assert.deepEqual(items.map((w) => w.status), ['parked']);
    assert.match(items[0]!.lastError ?? '', /unknown orderStatus '31'/);
    assert.deepEqual(await ledger(tdb.db, orderId), { purchased: 2, available: 1, consumed: 0, refundPending: 1, refunded: 0, expired: 0 }, 'nothing adopted from an unknown state');
    const ex = await tdb.db.read((em) => em.find(OperatorExceptionEntity, { where: { kind: UNMAPPED_OUTSIDE_STATE } }));
    assert.equal(ex.length, 1);
    assert.equal(ex[0]!.orderId, orderId);
    assert.deepEqual(JSON.parse(ex[0]!.detail), { system: 'lianhe', field: 'orderStatus', value: '31', context: 'lianhe cancelOrder refusal', tableVersion: 1 });
    assert.ok((await tdb.db.read((em) => listOrderEvents(em, orderId))).some((e) => e.type === 'exception.raised'));
    assert.equal((await metrics.unmappedOutsideStates.get()).values.find((v) => v.labels.system === 'lianhe')?.value, 1);
  } finally {
    await top.stop();
    await sim.close();
    await tdb.drop();
  }
});
