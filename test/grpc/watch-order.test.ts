/**
 * OrderService.WatchOrder through a real gRPC server: a watcher receives a refund flow's events in order as they
 * are appended, resumes from a sequence, ends when the client cancels, and is bounded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { CancelOrderRequest, OrderServiceService, WatchOrderRequest, type WatchOrderResponse } from '../../src/gen/ticketgateway/orders/v1/orders';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { orderServiceHandlers } from '../../src/grpc/order-service';
import { OrderWatch } from '../../src/grpc/order-watch';
import { errorInfoOf } from '../../src/grpc/grpc-errors';
import { eventTypeName } from '../../src/outbox/outbox';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { OrderRepository } from '../../src/persistence/order-repository';
import { RefundService } from '../../src/refunds/refund-service';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { orderClient, unary } from '../support/grpc-clients';
import { directoryOf, drain, issuedOrder, refundRunner, sandbox, TestClock } from '../refunds/refund-fixtures';

/** Collects a stream's messages; `until(n)` resolves once n have arrived (or fails after a bound). */
function collect(stream: ClientReadableStream<WatchOrderResponse>) {
  const got: WatchOrderResponse[] = [];
  let ended: ServiceError | 'end' | undefined;
  stream.on('data', (m: WatchOrderResponse) => got.push(m));
  stream.on('error', (e: ServiceError) => (ended = e));
  stream.on('end', () => (ended ??= 'end'));
  const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(cond(), `timed out waiting for ${what} (got ${got.length} events, ended=${String(ended && (ended === 'end' ? 'end' : ended.code))})`);
  };
  return {
    got,
    ended: () => ended,
    until: (n: number) => waitFor(() => got.length >= n, `${n} events`),
    untilEnded: () => waitFor(() => ended !== undefined, 'the stream to end'),
  };
}

const typesOf = (msgs: WatchOrderResponse[]) => msgs.map((m) => eventTypeName(m.event!.type));

for (const kind of DATABASE_KINDS) {
  test(`${kind}: WatchOrder streams a refund flow's events in order, resumes from a sequence, stops on cancel`, { timeout: 60_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    const db = tdb.db;
    const clock = new TestClock();
    const watch = new OrderWatch(db, { pollMs: 20, maxWatchers: 2 });
    const grpc = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
    grpc.addService(OrderServiceService, orderServiceHandlers({ orders: new OrderRepository(db), clock, refunds: new RefundService({ db, clock }), watch }));
    const port = await grpc.listen(0, '127.0.0.1');
    const client = orderClient(port);
    const open = (p: Partial<WatchOrderRequest>) => client.watchOrder(WatchOrderRequest.fromPartial(p), new Metadata(), { deadline: Date.now() + 30_000 });
    const streams: ClientReadableStream<WatchOrderResponse>[] = [];
    try {
      const supplier = sandbox({}, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 3 });
      const other = await issuedOrder(db, supplier, { purchased: 1 });
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });

      const s1 = open({ orderId });
      streams.push(s1);
      const w = collect(s1);
      // Nothing yet: the watcher waits instead of ending.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(w.got.length, 0);
      assert.equal(w.ended(), undefined);

      await unary(client, 'cancelOrder', CancelOrderRequest.fromPartial({ orderId, quantity: 1, requestId: 'w-1' }));
      await w.until(1);
      assert.deepEqual(typesOf(w.got), ['refund.requested'], 'pushed while the flow is under way');
      // Another order's events are not this watcher's.
      await unary(client, 'cancelOrder', CancelOrderRequest.fromPartial({ orderId: other, quantity: 1, requestId: 'w-other' }));
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      await unary(client, 'cancelOrder', CancelOrderRequest.fromPartial({ orderId, quantity: 2, requestId: 'w-2' }));
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      await w.until(4);
      assert.deepEqual(typesOf(w.got), ['refund.requested', 'refund.approved', 'refund.requested', 'refund.approved']);
      assert.ok(w.got.every((m) => m.event!.orderId === orderId));
      assert.deepEqual(w.got.map((m) => m.event!.refundRequested?.quantity ?? m.event!.refundApproved?.quantity), [1, 1, 2, 2]);
      const seqs = w.got.map((m) => Number(m.sequence));
      assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `sequences increase: ${seqs.join(',')}`);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(w.got.length, 4, 'no duplicates on later polls');

      // Resume after the second event: only the last two come.
      const s2 = open({ orderId, afterSequence: w.got[1]!.sequence });
      streams.push(s2);
      const resumed = collect(s2);
      await resumed.until(2);
      assert.deepEqual(resumed.got.map((m) => m.sequence), w.got.slice(2).map((m) => m.sequence));

      // Bounded: a third concurrent watcher is refused.
      const s3 = open({ orderId });
      streams.push(s3);
      const third = collect(s3);
      await third.untilEnded();
      const refused = third.ended() as ServiceError;
      assert.equal(refused.code, status.RESOURCE_EXHAUSTED);
      assert.equal(errorInfoOf(refused)?.reason, 'TOO_MANY_WATCHERS');

      // The client cancels: the server-side watchers end and free their slots.
      s1.cancel();
      s2.cancel();
      for (let i = 0; i < 200 && watch.watchers > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(watch.watchers, 0);

      const missing = collect(open({ orderId: 'o_missing' }));
      await missing.untilEnded();
      assert.equal((missing.ended() as ServiceError).code, status.NOT_FOUND);
      const bad = collect(open({ orderId, afterSequence: '-1' }));
      await bad.untilEnded();
      assert.equal((bad.ended() as ServiceError).code, status.INVALID_ARGUMENT);
    } finally {
      for (const s of streams) s.cancel();
      watch.close();
      client.close();
      await grpc.close(1000);
      await tdb.drop();
    }
  });
}

test('close() ends open streams and the time limit ends a stream cleanly', { timeout: 30_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  const clock = new TestClock();
  const supplier = sandbox({}, clock);
  try {
    const orderId = await issuedOrder(tdb.db, supplier, { purchased: 1 });
    const limited = new OrderWatch(tdb.db, { pollMs: 10, maxStreamMs: 150 });
    const started = Date.now();
    const seen: number[] = [];
    for await (const e of limited.watch(orderId, 0, new AbortController().signal)) seen.push(e.sequence);
    assert.ok(Date.now() - started >= 140, 'ran until its time limit');
    assert.deepEqual(seen, []);
    assert.equal(limited.watchers, 0);

    const closing = new OrderWatch(tdb.db, { pollMs: 10 });
    const run = (async () => {
      for await (const _ of closing.watch(orderId, 0, new AbortController().signal)) void _;
    })();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closing.watchers, 1);
    closing.close();
    await run;
    assert.equal(closing.watchers, 0);
    assert.throws(() => closing.watch(orderId, 0, new AbortController().signal), /watchers/);
  } finally {
    await tdb.drop();
  }
});
