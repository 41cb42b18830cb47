/**
 * Faults leave as google.rpc.Status with a google.rpc.ErrorInfo in `grpc-status-details-bin`: a real client
 * decodes reason, domain and metadata (NOT_FOUND; QUANTITY_EXCEEDS_REFUNDABLE with the refundable count).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { CancelOrderRequest, GetOrderRequest, OrderServiceService } from '../../src/gen/ticketgateway/orders/v1/orders';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details';
import { ERROR_DOMAIN, ERROR_INFO_TYPE_URL, errorInfoOf, richStatusOf } from '../../src/grpc/grpc-errors';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { orderServiceHandlers } from '../../src/grpc/order-service';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { OrderRepository } from '../../src/persistence/order-repository';
import { RefundService } from '../../src/refunds/refund-service';
import { openTestDatabase } from '../support/database';
import { orderClient, unary } from '../support/grpc-clients';
import { admitUnits, issuedOrder, sandbox, TestClock } from '../refunds/refund-fixtures';

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  assert.fail('the call was expected to fail');
}

test('a client decodes ErrorInfo from grpc-status-details-bin for NOT_FOUND and QUANTITY_EXCEEDS_REFUNDABLE', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  const clock = new TestClock();
  const grpc = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
  grpc.addService(OrderServiceService, orderServiceHandlers({ orders: new OrderRepository(tdb.db), clock, refunds: new RefundService({ db: tdb.db, clock }) }));
  const port = await grpc.listen(0, '127.0.0.1');
  const client = orderClient(port);
  try {
    const notFound = await failure(unary(client, 'getOrder', GetOrderRequest.fromPartial({ id: 'o_missing' })));
    assert.equal(notFound.code, status.NOT_FOUND);
    const rich = richStatusOf(notFound);
    assert.ok(rich, 'grpc-status-details-bin present');
    assert.equal(rich.code, status.NOT_FOUND, 'Status.code matches the gRPC code');
    assert.match(rich.message, /o_missing/);
    assert.deepEqual(rich.details.map((d) => d.typeUrl), [ERROR_INFO_TYPE_URL]);
    // Decoded by hand too, as a client in another language would.
    const info = ErrorInfo.decode(rich.details[0]!.value);
    assert.deepEqual(info, { reason: 'ORDER_NOT_FOUND', domain: ERROR_DOMAIN, metadata: { resourceType: 'order', resourceId: 'o_missing' } });
    assert.equal(notFound.metadata.get('error-reason')[0], 'ORDER_NOT_FOUND', 'the plain trailer stays');

    const supplier = sandbox({}, clock);
    const orderId = await issuedOrder(tdb.db, supplier, { purchased: 4 });
    await admitUnits(tdb.db, supplier, orderId, 1, clock.now() + 1000);
    const tooMany = await failure(unary(client, 'cancelOrder', CancelOrderRequest.fromPartial({ orderId, quantity: 5, requestId: 'r-over' })));
    assert.equal(tooMany.code, status.FAILED_PRECONDITION);
    const over = errorInfoOf(tooMany);
    assert.ok(over);
    assert.equal(over.reason, 'QUANTITY_EXCEEDS_REFUNDABLE');
    assert.equal(over.domain, 'ticketgateway');
    assert.equal(over.metadata.refundable, '3', 'the refundable count travels in metadata');

    const bad = await failure(unary(client, 'getOrder', GetOrderRequest.fromPartial({ id: '' })));
    assert.deepEqual(errorInfoOf(bad), { reason: 'INVALID_ARGUMENT', domain: 'ticketgateway', metadata: { field: 'id' } });
  } finally {
    client.close();
    await grpc.close(0);
    await tdb.drop();
  }
});
