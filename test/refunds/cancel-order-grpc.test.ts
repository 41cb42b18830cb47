/**
 * OrderService.GetRefundable and CancelOrder through a real gRPC server on 127.0.0.1:0: idempotent by request id,
 * refusals as statuses with machine-readable reasons and figures.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import {
  CancelOrderRequest,
  GetRefundableRequest,
  OrderServiceService,
  RefundableReason,
  RefundAuditState,
  type CancelOrderResponse,
  type GetRefundableResponse,
} from '../../src/gen/ticketgateway/orders/v1/orders';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { orderServiceHandlers } from '../../src/grpc/order-service';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { OrderRepository } from '../../src/persistence/order-repository';
import { RefundService } from '../../src/refunds/refund-service';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { orderClient, unary } from '../support/grpc-clients';
import { admitUnits, assertEveryLedgerHolds, directoryOf, drain, issuedOrder, ledger, refundRunner, refundsOf, sandbox, TestClock } from './refund-fixtures';

function reasonOf(e: ServiceError): string | undefined {
  return e.metadata?.get('error-reason')[0]?.toString();
}

for (const kind of DATABASE_KINDS) {
  test(`${kind}: CancelOrder is idempotent by request id; refusals carry reasons; GetRefundable tells the figures`, { timeout: 60_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    const db = tdb.db;
    const clock = new TestClock();
    const grpc = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
    grpc.addService(OrderServiceService, orderServiceHandlers({ orders: new OrderRepository(db), clock, refunds: new RefundService({ db, clock }) }));
    const port = await grpc.listen(0, '127.0.0.1');
    const client = orderClient(port);
    const cancel = (p: Partial<CancelOrderRequest>) => unary<CancelOrderRequest, CancelOrderResponse>(client, 'cancelOrder', CancelOrderRequest.fromPartial(p));
    const refundable = (orderId: string) => unary<GetRefundableRequest, GetRefundableResponse>(client, 'getRefundable', GetRefundableRequest.fromPartial({ orderId }));
    const refusal = (code: status, reason: string, extra?: (e: ServiceError) => void) => (e: ServiceError) => {
      assert.equal(e.code, code, e.details);
      assert.equal(reasonOf(e), reason);
      extra?.(e);
      return true;
    };
    try {
      const supplier = sandbox({}, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 4 });
      await admitUnits(db, supplier, orderId, 1, clock.now() + 1000);

      const r0 = await refundable(orderId);
      assert.equal(r0.refundableQuantity, 3);
      assert.equal(r0.reason, RefundableReason.REFUNDABLE_REASON_REFUNDABLE);
      assert.deepEqual(r0.ledger, { purchased: 4, available: 3, consumed: 1, refundPending: 0, refunded: 0, expired: 0 });

      await assert.rejects(
        cancel({ orderId, quantity: 5, requestId: 'req-over' }),
        refusal(status.FAILED_PRECONDITION, 'QUANTITY_EXCEEDS_REFUNDABLE', (e) => assert.equal(e.metadata.get('error-refundable')[0], '3')),
      );
      assert.equal((await refundsOf(db, orderId)).length, 0, 'refused up front, nothing recorded');

      const first = await cancel({ orderId, quantity: 2, requestId: 'req-1' });
      assert.equal(first.replayed, false);
      assert.equal(first.refund!.quantity, 2);
      assert.equal(first.refund!.auditState, RefundAuditState.REFUND_AUDIT_STATE_PENDING_SUBMIT);
      assert.equal(first.refund!.origin, 'internal');
      const again = await cancel({ orderId, quantity: 2, requestId: 'req-1' });
      assert.equal(again.replayed, true);
      assert.equal(again.refund!.id, first.refund!.id);
      assert.equal((await refundsOf(db, orderId)).length, 1, 'no second refund');
      assert.deepEqual(await ledger(db, orderId), { purchased: 4, available: 1, consumed: 1, refundPending: 2, refunded: 0, expired: 0 });

      await assert.rejects(cancel({ orderId, quantity: 1, requestId: 'req-1' }), refusal(status.INVALID_ARGUMENT, 'REQUEST_ID_REUSED'));
      await assert.rejects(cancel({ orderId, quantity: 1, requestId: '' }), refusal(status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'));
      await assert.rejects(cancel({ orderId, quantity: 0, requestId: 'req-0' }), refusal(status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'));
      await assert.rejects(cancel({ orderId: 'o_missing', quantity: 1, requestId: 'req-x' }), refusal(status.NOT_FOUND, 'ORDER_NOT_FOUND'));
      await assert.rejects(refundable('o_missing'), refusal(status.NOT_FOUND, 'ORDER_NOT_FOUND'));

      // The supplier approves; the last unit goes too; then nothing is left to refund.
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      assert.equal((await refundsOf(db, orderId))[0]!.auditState, 'approved');
      await cancel({ orderId, quantity: 1, requestId: 'req-2' });
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      assert.deepEqual(await ledger(db, orderId), { purchased: 4, available: 0, consumed: 1, refundPending: 0, refunded: 3, expired: 0 });
      const r1 = await refundable(orderId);
      assert.equal(r1.refundableQuantity, 0);
      assert.equal(r1.reason, RefundableReason.REFUNDABLE_REASON_NOTHING_UNUSED);
      await assert.rejects(cancel({ orderId, quantity: 1, requestId: 'req-3' }), refusal(status.FAILED_PRECONDITION, 'ALREADY_REFUNDED'));

      const used = await issuedOrder(db, supplier, { purchased: 1 });
      await admitUnits(db, supplier, used, 1, clock.now() + 1000);
      await assert.rejects(cancel({ orderId: used, quantity: 1, requestId: 'req-4' }), refusal(status.FAILED_PRECONDITION, 'CONSUMED'));
      await assertEveryLedgerHolds(db);
    } finally {
      client.close();
      await grpc.close(0);
      await tdb.drop();
    }
  });
}

for (const kind of DATABASE_KINDS) test(`${kind}: concurrent first tries of one request id make exactly one refund`, { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase(kind);
  try {
    const clock = new TestClock();
    const service = new RefundService({ db: tdb.db, clock });
    const orderId = await issuedOrder(tdb.db, sandbox({}, clock), { purchased: 5 });
    const results = await Promise.all(Array.from({ length: 5 }, () => service.cancelOrder({ orderId, quantity: 2, callerRequestId: 'same' })));
    assert.ok(results.every((r) => r.ok));
    const ids = new Set(results.map((r) => (r.ok ? r.refund.id : '')));
    assert.equal(ids.size, 1);
    assert.equal(results.filter((r) => r.ok && !r.replayed).length, 1);
    assert.equal((await ledger(tdb.db, orderId)).refundPending, 2);
    await assertEveryLedgerHolds(tdb.db);
  } finally {
    await tdb.drop();
  }
});
