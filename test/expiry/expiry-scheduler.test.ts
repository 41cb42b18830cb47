/**
 * The expiry sweep with an injected clock: day 4 after validity end -> units expired and the expiry refund
 * requested (product ratio, minus the code fee); day 6 -> expired, not refundable, GetRefundable says so with
 * the deadline and CancelOrder answers OUTSIDE_REFUND_WINDOW. Repeated sweeps (other replicas) change nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { ExpiryScheduler } from '../../src/expiry/expiry-scheduler';
import { EXPIRED_REFUND_GRACE_MS } from '../../src/domain/validity-rules';
import { CancelOrderRequest, GetRefundableRequest, OrderServiceService, RefundableReason, type CancelOrderResponse, type GetRefundableResponse } from '../../src/gen/ticketgateway/orders/v1/orders';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { orderServiceHandlers } from '../../src/grpc/order-service';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { OrderRepository } from '../../src/persistence/order-repository';
import { RefundService } from '../../src/refunds/refund-service';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { orderClient, unary } from '../support/grpc-clients';
import {
  admitUnits,
  assertEveryLedgerHolds,
  DAY,
  directoryOf,
  drain,
  eventTypes,
  issuedOrder,
  ledger,
  productsOf,
  refundRunner,
  refundsOf,
  sandbox,
  T0,
  TestClock,
} from '../refunds/refund-fixtures';

const VALID_END = T0 + 10 * DAY;
const products = productsOf({
  'YZY-ADULT': { supplierInstance: 'sbx-test', expiryRefund: { allowed: true, ratioBasisPoints: 8000 } },
  'YZY-NOREFUND': { supplierInstance: 'sbx-test', expiryRefund: { allowed: false, ratioBasisPoints: 0 } },
});

for (const kind of DATABASE_KINDS) {
  test(`${kind}: expiry sweep at day 4 requests the expiry refund; at day 6 the units are not refundable`, { timeout: 60_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    const db = tdb.db;
    const clock = new TestClock(T0);
    const grpc = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
    grpc.addService(OrderServiceService, orderServiceHandlers({ orders: new OrderRepository(db), clock, refunds: new RefundService({ db, clock, products }) }));
    const port = await grpc.listen(0, '127.0.0.1');
    const client = orderClient(port);
    const getRefundable = (orderId: string) => unary<GetRefundableRequest, GetRefundableResponse>(client, 'getRefundable', GetRefundableRequest.fromPartial({ orderId }));
    try {
      const supplier = sandbox({}, clock);
      const day4 = await issuedOrder(db, supplier, { purchased: 3, validEnd: VALID_END });
      await admitUnits(db, supplier, day4, 1, T0 + DAY);
      const day6 = await issuedOrder(db, supplier, { purchased: 2, validEnd: VALID_END - 2 * DAY });
      const noRefund = await issuedOrder(db, supplier, { purchased: 1, validEnd: VALID_END, outerIid: 'YZY-NOREFUND' });
      const stillValid = await issuedOrder(db, supplier, { purchased: 1, validEnd: VALID_END + 30 * DAY });
      const scheduler = new ExpiryScheduler({ db, clock, products, batchSize: 10 });

      // Before the end of validity (inclusive) nothing expires.
      clock.t = VALID_END - 2 * DAY;
      assert.deepEqual(await scheduler.sweep(), []);

      // day6 ended 2 days earlier: at VALID_END + 4 days it is at day 6 after its end, day4 at day 4.
      clock.t = VALID_END + 4 * DAY;
      const outcomes = await scheduler.sweep();
      const byId = new Map(outcomes.map((o) => [o.orderId, o]));
      assert.equal(outcomes.length, 3);
      assert.equal(byId.get(day4)!.expired, 2);
      assert.ok(byId.get(day4)!.refundId);
      assert.equal(byId.get(day6)!.noRefund, 'REFUND_WINDOW_CLOSED');
      assert.equal(byId.get(noRefund)!.noRefund, 'EXPIRY_REFUND_NOT_ALLOWED');
      assert.equal(byId.has(stillValid), false);

      // Day 4: expired units went straight to refund pending, buyer gets 2 x 88 yuan x 80% - 1 yuan.
      assert.deepEqual(await ledger(db, day4), { purchased: 3, available: 0, consumed: 1, refundPending: 2, refunded: 0, expired: 0 });
      const [refund] = await refundsOf(db, day4);
      assert.equal(refund!.origin, 'expiry');
      assert.equal(refund!.fromBucket, 'expired');
      assert.equal(Number(refund!.buyerRefundFen), Math.floor((2 * 8800 * 8000) / 10000) - 100);
      assert.deepEqual(await eventTypes(db, day4), ['order.expired', 'refund.requested']);
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier), products });
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      assert.deepEqual(await ledger(db, day4), { purchased: 3, available: 0, consumed: 1, refundPending: 0, refunded: 2, expired: 0 });

      // Day 6: expired, never refunded; GetRefundable says why, with the deadline.
      assert.deepEqual(await ledger(db, day6), { purchased: 2, available: 0, consumed: 0, refundPending: 0, refunded: 0, expired: 2 });
      assert.deepEqual(await refundsOf(db, day6), []);
      assert.deepEqual(await eventTypes(db, day6), ['order.expired']);
      const r6 = await getRefundable(day6);
      assert.equal(r6.refundableQuantity, 0);
      assert.equal(r6.reason, RefundableReason.REFUNDABLE_REASON_EXPIRED_REFUND_DEADLINE_PASSED);
      assert.equal(r6.expiredRefundDeadline!.getTime(), VALID_END - 2 * DAY + EXPIRED_REFUND_GRACE_MS);
      assert.equal(r6.ledger!.expired, 2);
      await assert.rejects(
        unary<CancelOrderRequest, CancelOrderResponse>(client, 'cancelOrder', CancelOrderRequest.fromPartial({ orderId: day6, quantity: 1, requestId: 'late' })),
        (e: ServiceError) => e.code === status.FAILED_PRECONDITION && e.metadata.get('error-reason')[0] === 'OUTSIDE_REFUND_WINDOW',
      );

      // The no-refund product: expired, but inside the window an internal caller may still ask.
      const rn = await getRefundable(noRefund);
      assert.equal(rn.refundableQuantity, 1);
      assert.equal(rn.refundableFromExpired, 1);

      // Another sweep (another replica, or the next tick) finds nothing to do.
      assert.deepEqual(await scheduler.sweep(), []);
      assert.deepEqual(await eventTypes(db, day6), ['order.expired']);
      await assertEveryLedgerHolds(db);
    } finally {
      client.close();
      await grpc.close(0);
      await tdb.drop();
    }
  });
}

test('sqlite: two schedulers sweeping at once expire each order once; the timer runs and stops', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  try {
    const db = tdb.db;
    const clock = new TestClock(T0);
    const supplier = sandbox({}, clock);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await issuedOrder(db, supplier, { purchased: 2, validEnd: VALID_END }));
    clock.t = VALID_END + DAY;
    const a = new ExpiryScheduler({ db, clock, products, batchSize: 3 });
    const b = new ExpiryScheduler({ db, clock, products, batchSize: 3 });
    const [ra, rb] = await Promise.all([a.sweep(), b.sweep()]);
    assert.equal(ra.length + rb.length, 3, 'batch bounded to 3 between them, no order twice');
    const timed = new ExpiryScheduler({ db, clock, products, intervalMs: 5, batchSize: 3 });
    timed.start();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const pending = await Promise.all(ids.map((id) => ledger(db, id)));
      if (pending.every((l) => l.available === 0)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await timed.stop();
    for (const id of ids) {
      assert.deepEqual(await ledger(db, id), { purchased: 2, available: 0, consumed: 0, refundPending: 2, refunded: 0, expired: 0 });
      assert.deepEqual(await eventTypes(db, id), ['order.expired', 'refund.requested']);
      assert.equal((await refundsOf(db, id)).length, 1);
    }
    await assertEveryLedgerHolds(db);
  } finally {
    await tdb.drop();
  }
});
