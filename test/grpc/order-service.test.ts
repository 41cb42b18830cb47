/**
 * proto -> handler -> repository -> database, through a real gRPC server on 127.0.0.1:0, on SQLite and MariaDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { loadConfig } from '../../src/config';
import { Gateway } from '../../src/app';
import { createLogger } from '../../src/observability/logger';
import { OrderState } from '../../src/domain/model';
import { newLedger } from '../../src/domain/ledger';
import { OrderRepository } from '../../src/persistence/order-repository';
import { OrderState as ProtoState, ListOrdersRequest, GetOrderRequest, type ListOrdersResponse, type GetOrderResponse } from '../../src/gen/ticketgateway/orders/v1/orders';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { orderClient, unary } from '../support/grpc-clients';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);

for (const kind of DATABASE_KINDS) {
  test(`OrderService over gRPC on ${kind}: GetOrder, NOT_FOUND, ListOrders filters and pages, bad arguments`, { timeout: 90_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    const orders = new OrderRepository(tdb.db);
    for (let i = 0; i < 7; i++) {
      await orders.insert(
        {
          taobaoOrderId: `15256580260407${i}`,
          token: `tok${i}`,
          outerIid: i % 2 === 0 ? 'YZY-ADULT' : 'YZY-CHILD',
          itemTitle: '银子岩门票',
          unitPriceFen: 8800,
          totalFeeFen: 8800 * 2,
          noticeType: 0,
          mobileMasked: '138****5678',
          validStart: T0,
          validEnd: T0 + DAY,
          supplier: i < 5 ? 'zhiyoubao' : 'lianhe',
          supplierOrderId: `ZYB${i}`,
          state: i === 6 ? OrderState.Received : OrderState.Issued,
          ledger: newLedger(2),
          createdAt: T0 + i * 1000,
        },
        i === 6 ? [] : [{ code: `CODE${i}`, total: 2 }],
      );
    }
    const gateway = await Gateway.start({
      config: loadConfig({ DATABASE_URL: tdb.url, DATA_DIR: tdb.dataDir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', PERSONAL_DATA_KEY: 'k'.repeat(32) }),
      logger: createLogger('silent'),
      defaultMetrics: false,
    });
    const client = orderClient(gateway.grpcPort);
    const list = (p: Partial<ListOrdersRequest>) => unary<ListOrdersRequest, ListOrdersResponse>(client, 'listOrders', ListOrdersRequest.fromPartial(p));
    const get = (p: Partial<GetOrderRequest>) => unary<GetOrderRequest, GetOrderResponse>(client, 'getOrder', GetOrderRequest.fromPartial(p));
    try {
      const all = await list({});
      assert.equal(all.orders.length, 7);
      assert.deepEqual(all.orders.map((o) => o.taobaoOrderId), [6, 5, 4, 3, 2, 1, 0].map((i) => `15256580260407${i}`), 'newest first');

      const got = await get({ id: all.orders[2]!.id });
      const o = got.order!;
      assert.equal(o.taobaoOrderId, '152565802604074');
      assert.equal(o.state, ProtoState.ORDER_STATE_ISSUED);
      assert.equal(o.itemTitle, '银子岩门票');
      assert.equal(o.unitPriceFen, '8800');
      assert.deepEqual(o.ledger, { purchased: 2, available: 2, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
      assert.deepEqual(o.vouchers, [{ code: 'CODE4', total: 2, remaining: 2 }]);
      assert.equal(o.mobileMasked, '138****5678');
      assert.equal(o.validStartTime!.getTime(), T0);
      assert.equal(o.validEndTime!.getTime(), T0 + DAY);
      assert.equal(o.createTime!.getTime(), T0 + 4000);
      assert.deepEqual(o.supplierOrderIds, ['ZYB4']);

      await assert.rejects(get({ id: 'o_missing' }), (e: { code: number }) => e.code === status.NOT_FOUND);
      await assert.rejects(get({ id: '' }), (e: { code: number; details: string }) => e.code === status.INVALID_ARGUMENT && /id: is required/.test(e.details));

      const lianhe = await list({ supplier: 'lianhe' });
      assert.deepEqual(lianhe.orders.map((x) => x.supplier), ['lianhe', 'lianhe']);
      const received = await list({ state: ProtoState.ORDER_STATE_RECEIVED });
      assert.deepEqual(received.orders.map((x) => x.taobaoOrderId), ['152565802604076']);
      const child = await list({ product: 'YZY-CHILD' });
      assert.equal(child.orders.length, 3);
      const window = await list({ createTimeFrom: new Date(T0 + 2000), createTimeTo: new Date(T0 + 4000) });
      assert.deepEqual(window.orders.map((x) => x.taobaoOrderId), ['152565802604073', '152565802604072']);

      const seen: string[] = [];
      let token = '';
      for (let pages = 0; pages < 10; pages++) {
        const page = await list({ pageSize: 3, pageToken: token });
        seen.push(...page.orders.map((x) => x.id));
        token = page.nextPageToken;
        if (!token) break;
      }
      assert.deepEqual(seen, all.orders.map((x) => x.id), 'pages walk every order once, in order');

      await assert.rejects(list({ pageToken: 'garbage' }), (e: { code: number; details: string }) => e.code === status.INVALID_ARGUMENT && /page_token/.test(e.details));
      await assert.rejects(list({ pageSize: -1 }), (e: { code: number }) => e.code === status.INVALID_ARGUMENT);
      await assert.rejects(list({ state: 99 as ProtoState }), (e: { code: number }) => e.code === status.INVALID_ARGUMENT);
      await assert.rejects(
        list({ createTimeFrom: new Date(T0 + 5000), createTimeTo: new Date(T0) }),
        (e: { code: number }) => e.code === status.INVALID_ARGUMENT,
      );
    } finally {
      client.close();
      await gateway.stop();
      await tdb.drop();
    }
  });
}
