/**
 * An outside state the table does not know becomes an operator exception (+ exception.raised event + metric
 * unmapped_outside_states_total{system}), listed by ReconciliationService.ListUnmappedOutsideStates — here a
 * Lianhe snNotify whose orderStatus the instance's configured table lacks, through a whole Gateway and the
 * Lianhe simulator's real signed HTTP callback. The admission itself still applies; nothing is guessed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { Gateway } from '../../src/app';
import { loadConfig } from '../../src/config';
import { newLedger } from '../../src/domain/ledger';
import { OrderState } from '../../src/domain/model';
import { createLogger } from '../../src/observability/logger';
import { listOrderEvents } from '../../src/outbox/outbox';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { OrderRepository } from '../../src/persistence/order-repository';
import { listUnmappedStates, raiseUnmappedState, UNMAPPED_OUTSIDE_STATE } from '../../src/state-mapping/unmapped-states';
import {
  ListUnmappedOutsideStatesRequest,
  ReconciliationServiceClient,
  type ListUnmappedOutsideStatesResponse,
} from '../../src/gen/ticketgateway/admin/v1/reconciliation';
import { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import { openTestDatabase } from '../support/database';
import { unary } from '../support/grpc-clients';

async function metricValue(gateway: Gateway, system: string): Promise<number> {
  const m = await gateway.metrics.unmappedOutsideStates.get();
  return m.values.find((v) => v.labels.system === system)?.value ?? 0;
}

test('an unknown Lianhe orderStatus in a callback is raised once, counted, listed by the admin RPC; the admission applies', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unmapped-'));
  const sim = await new LianheSimulator().start();
  const suppliersFile = join(dir, 'suppliers.json');
  // This instance's table drops code 8 (partially used): for it, 8 is an unknown state.
  writeFileSync(
    suppliersFile,
    JSON.stringify({ 'lh-main': { type: 'lianhe', baseUrl: sim.baseUrl, partnerId: sim.partnerId, apiName: sim.apiName, clientSecret: sim.clientSecret, statusMapping: { orderStatus: { '8': null } } } }),
  );
  const gateway = await Gateway.start({
    config: loadConfig({ DATA_DIR: dir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', SUPPLIERS_FILE: suppliersFile, RECONCILIATION_INTERVAL_MS: '0' }),
    logger: createLogger('silent'),
    defaultMetrics: false,
  });
  const admin = new ReconciliationServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  try {
    const adapter = gateway.supplierDirectory.get('lh-main')!;
    const orderId = 'o_unmapped0001';
    const placed = await adapter.placeOrder({ ourOrderCode: orderId, visitorName: '张三', mobile: '13800138000', supplierTicketType: '9001', quantity: 3, unitPriceFen: 8800, visitDate: '2026-11-01' });
    assert.equal(placed.kind, 'placed');
    if (placed.kind !== 'placed') return;
    await new OrderRepository(gateway.db).insert(
      {
        id: orderId,
        taobaoOrderId: '4001002003004',
        token: 'tok',
        outerIid: 'LH-ITEM',
        unitPriceFen: 8800,
        totalFeeFen: 3 * 8800,
        noticeType: 0,
        mobileMasked: '138****8000',
        validStart: Date.now() - 1000,
        validEnd: Date.now() + 86_400_000,
        supplier: 'lh-main',
        supplierOrderId: placed.supplierOrderId,
        state: OrderState.Issued,
        ledger: newLedger(3),
        createdAt: Date.now(),
      },
      placed.vouchers.map((v) => ({ code: v.code, total: 3 })),
    );
    const url = `http://127.0.0.1:${gateway.httpPort}/suppliers/lh-main/callback`;

    const first = await sim.sendAdmissionCallback(url, orderId, 1);
    assert.deepEqual(first.map((d) => [d.status, d.body]), [[200, 'success']]);
    const second = await sim.sendAdmissionCallback(url, orderId, 1);
    assert.deepEqual(second.map((d) => d.status), [200]);

    const order = await gateway.db.read((em) => em.findOneByOrFail(OrderEntity, { id: orderId }));
    assert.equal(order.consumed, 2, 'both admissions applied: the count does not depend on the unknown state');
    const exceptions = await gateway.db.read((em) => em.find(OperatorExceptionEntity, { where: { kind: UNMAPPED_OUTSIDE_STATE } }));
    assert.equal(exceptions.length, 1, 'raised once while open, though seen twice');
    assert.equal(exceptions[0]!.orderId, orderId);
    const events = await gateway.db.read((em) => listOrderEvents(em, orderId));
    // Only this kind: the consume work of the admission may park meanwhile (no gate device, so no posid) and raise its own.
    const raised = events.filter((e) => e.type === 'exception.raised' && e.event.exceptionRaised?.kind === UNMAPPED_OUTSIDE_STATE);
    assert.equal(raised.length, 1);
    assert.equal(raised[0]!.event.exceptionRaised!.kind, UNMAPPED_OUTSIDE_STATE);
    assert.equal(await metricValue(gateway, 'lianhe'), 1);

    const listed = await unary<ListUnmappedOutsideStatesRequest, ListUnmappedOutsideStatesResponse>(admin, 'listUnmappedOutsideStates', ListUnmappedOutsideStatesRequest.fromPartial({}));
    assert.equal(listed.states.length, 1);
    const s = listed.states[0]!;
    assert.deepEqual([s.system, s.field, s.value, s.orderId], ['lianhe', 'orderStatus', '8', orderId]);
    assert.match(s.context, /admission callback to lh-main/);
    assert.equal(s.stateMappingVersion, 1);
    assert.equal(s.resolveTime, undefined);

    // A known code (9 = used, default table) raises nothing more.
    await sim.sendAdmissionCallback(url, orderId, 1);
    assert.equal(await metricValue(gateway, 'lianhe'), 1);
  } finally {
    admin.close();
    await gateway.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('raising without an order, resolving, and listing with or without resolved ones', { timeout: 30_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  const seen: string[] = [];
  const deps = { clock: { now: () => 1_000 }, counter: { inc: (l: { system: string }) => seen.push(l.system) } };
  try {
    const state = { system: 'taobao' as const, field: 'code_status', value: '7', context: 'eticket.codes.get', orderId: null };
    assert.equal(await tdb.db.transaction((em) => raiseUnmappedState(em, state, deps)), true);
    assert.equal(await tdb.db.transaction((em) => raiseUnmappedState(em, state, deps)), false, 'open: not raised twice');
    assert.deepEqual(seen, ['taobao']);
    const [open] = await listUnmappedStates(tdb.db);
    assert.deepEqual([open!.system, open!.value, open!.orderId], ['taobao', '7', null]);
    await tdb.db.transaction((em) => em.update(OperatorExceptionEntity, { id: open!.exceptionId }, { resolvedAt: 2_000 }));
    assert.deepEqual(await listUnmappedStates(tdb.db), []);
    assert.equal((await listUnmappedStates(tdb.db, { includeResolved: true }))[0]!.resolvedAt, 2_000);
    assert.equal(await tdb.db.transaction((em) => raiseUnmappedState(em, state, deps)), true, 'seen again after resolution: raised again');
  } finally {
    await tdb.drop();
  }
});
