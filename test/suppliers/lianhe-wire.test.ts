/** Lianhe wire details: the §3.1 signature vector, request shape, configurable status mapping, notices. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LianheAdapter, type LianheConfig } from '../../src/suppliers/lianhe/lianhe-adapter';
import { lianheSignature, verifyLianheAuthorization } from '../../src/suppliers/lianhe/lianhe-signature';
import { SupplierCallError, SupplierConfigError, UnknownSupplierStateError } from '../../src/suppliers/supplier-adapter';

const SECRET = 'lh-secret';
const NOW = Date.UTC(2025, 4, 1, 2, 3, 4);
const clock = { now: () => NOW };

let server: Server;
let baseUrl = '';
let captured: { url: string; headers: IncomingHttpHeaders; json: any } | undefined;
let reply: unknown = {};

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      captured = { url: req.url ?? '', headers: req.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(typeof reply === 'string' ? reply : JSON.stringify(reply));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function adapter(extra: Partial<LianheConfig> = {}): LianheAdapter {
  return new LianheAdapter({ baseUrl, partnerId: 508, apiName: 'test', clientSecret: SECRET, timeoutMs: 2_000, ...extra }, clock);
}
const ref = { ourOrderCode: 'TB1', supplierOrderId: '15354' };
const place = { ourOrderCode: 'TB1', visitorName: '张三', mobile: '13800138000', supplierTicketType: '9001', quantity: 2, unitPriceFen: 12_050, visitDate: '2025-05-01' };

describe('lianhe signing', () => {
  it('matches the published vector WymO6w180DUmp91DaYiHY6Tt0rA=', () => {
    // Lianhe's public test account secret, from their Java signing test.
    assert.equal(lianheSignature('65bd39b97db32f409adb50d0e2dccd49', 'POST', '/openapi/index.php?method=newOrder', 'Mon, 11 Dec 2017 15:27:10 GMT'), 'WymO6w180DUmp91DaYiHY6Tt0rA=');
  });

  it('verification refuses stale, non-GMT, wrong-name and tampered headers', () => {
    const date = new Date(NOW).toUTCString();
    const sig = lianheSignature(SECRET, 'POST', '/u', date);
    const base = { clientSecret: SECRET, method: 'POST', uri: '/u', authorization: `LH test:${sig}`, date, now: NOW, maxSkewMs: 60_000 };
    assert.deepEqual(verifyLianheAuthorization(base), { ok: true });
    assert.equal(verifyLianheAuthorization({ ...base, now: NOW + 120_000 }).ok, false);
    assert.equal(verifyLianheAuthorization({ ...base, date: '2025-05-01T02:03:04Z' }).ok, false);
    assert.equal(verifyLianheAuthorization({ ...base, apiName: 'other' }).ok, false);
    assert.equal(verifyLianheAuthorization({ ...base, uri: '/v' }).ok, false);
    assert.equal(verifyLianheAuthorization({ ...base, authorization: undefined }).ok, false);
  });
});

describe('lianhe requests on the wire', () => {
  it('newOrder: signed headers and {partnerId, body} with yuan price, travel date and visitors', async () => {
    reply = { code: 10000, describe: '执行成功', partnerId: 508, body: { LHOrderId: '15354', orderStatus: 4, voucherType: 0, voucher: '88776655' } };
    const res = await adapter().placeOrder({ ...place, idCards: [{ name: '张三', id: '110101199003071234' }, { name: '李四', id: '110101199003075678' }] });
    assert.deepEqual(res, { kind: 'placed', supplierOrderId: '15354', supplierSubOrderIds: [], vouchers: [{ code: '88776655', quantity: 2 }], supplierState: '4', alreadyExisted: false });
    assert.ok(captured);
    assert.equal(captured.url, '/openapi/index.php?method=newOrder');
    assert.equal(captured.headers['date'], 'Thu, 01 May 2025 02:03:04 GMT');
    assert.equal(captured.headers['version'], '2.1');
    assert.equal(captured.headers['partnerid'], '508');
    const expectedSig = createHmac('sha1', SECRET).update('POST /openapi/index.php?method=newOrder\nThu, 01 May 2025 02:03:04 GMT').digest('base64');
    assert.equal(captured.headers['authorization'], `LH test:${expectedSig}`);
    assert.match(String(captured.headers['content-type']), /application\/json/);
    assert.equal(captured.json.partnerId, 508);
    const b = captured.json.body;
    assert.deepEqual(
      { orderId: b.orderId, LHDealId: b.LHDealId, sellPrice: b.sellPrice, quantity: b.quantity, travelDate: b.travelDate, payId: b.payId, smsfrom: b.smsfrom },
      { orderId: 'TB1', LHDealId: '9001', sellPrice: 120.5, quantity: 2, travelDate: '2025-05-01', payId: 'TB1', smsfrom: 0 },
    );
    assert.deepEqual(b.visitor.map((v: { credentials: string }) => v.credentials), ['110101199003071234', '110101199003075678']);
  });

  it('a newOrder "success" whose orderStatus maps to issue_failed is a rejection', async () => {
    reply = { code: 10000, describe: '支付失败', body: { LHOrderId: '1', orderStatus: 5, voucherType: 0, voucher: 'x' } };
    const res = await adapter().placeOrder(place);
    assert.equal(res.kind, 'rejected');
  });

  it('unknown interaction codes, missing bodies and missing vouchers are malformed, never success', async () => {
    for (const bad of [{ code: 12345, body: {} }, { code: 10000 }, { code: 10000, body: { LHOrderId: '1' } }, '[]', 'not json']) {
      reply = bad;
      await assert.rejects(adapter().placeOrder(place), (e: unknown) => e instanceof SupplierCallError && e.failure === 'malformed_reply' && e.retryable, JSON.stringify(bad));
    }
  });

  it('cancelOrder: over quantity is rejected with reQuantity; consumed orders with their state to adopt', async () => {
    reply = { code: 20000, describe: '执行失败', body: { LHOrderId: '15354', orderStatus: 7, reQuantity: 1, reStatus: 2 } };
    const over = await adapter().requestRefund(ref, { refundId: 'RF1', quantity: 3 });
    assert.deepEqual(
      { ...over },
      { kind: 'rejected', supplierCode: '20000', message: '执行失败 (reStatus 2)', refundableQuantity: 1, supplierState: '7', neutralStatus: 'refund_rejected' },
    );
    assert.deepEqual(captured!.json.body, { orderId: 'TB1', LHOrderId: '15354', refundId: 'RF1', quantity: 3 });
    reply = { code: 20000, describe: '执行失败', body: { LHOrderId: '15354', orderStatus: 9, reQuantity: 0, reStatus: 2 } };
    const consumed = await adapter().requestRefund(ref, { refundId: 'RF2', quantity: 1 });
    assert.ok(consumed.kind === 'rejected' && consumed.supplierState === '9' && consumed.neutralStatus === 'used' && consumed.refundableQuantity === 0);
  });

  it('cancelOrder accepted is pending audit under our refund id', async () => {
    reply = { code: 10000, describe: '执行成功', body: { LHOrderId: '15354', orderStatus: 6, reQuantity: 3 } };
    assert.deepEqual(await adapter().requestRefund(ref, { refundId: 'RF9', quantity: 1 }), { kind: 'pending_audit', batchNo: 'RF9' });
  });
});

describe('lianhe status mapping is configuration', () => {
  const query = (orderStatus: number) => ({ code: 10000, body: { orderId: 'TB1', LHOrderId: '15354', orderStatus, orderQuantity: 3, useQuantity: 1, reQuantity: 1, reStatus: 0 } });

  it('maps known codes with the default table and reads quantities', async () => {
    reply = query(8);
    assert.deepEqual(await adapter().queryOrder(ref), {
      supplierState: '8',
      neutralStatus: 'partially_used',
      purchasedQuantity: 4,
      usedQuantity: 1,
      refundedQuantity: 1,
      refundableQuantity: 2,
    });
  });

  it('an unknown code is an UnknownSupplierStateError, never a guess', async () => {
    reply = query(3);
    await assert.rejects(adapter().queryOrder(ref), (e: unknown) => e instanceof UnknownSupplierStateError && e.value === '3' && e.field === 'orderStatus');
    reply = { code: 20000, describe: 'x', body: { orderStatus: 42, reQuantity: 0 } };
    await assert.rejects(adapter().requestRefund(ref, { refundId: 'R', quantity: 1 }), UnknownSupplierStateError);
  });

  it('the instance config can add, override and remove codes', async () => {
    const configured = adapter({ statusMapping: { orderStatus: { '3': 'issued', '8': 'used', '9': null } } });
    reply = query(3);
    assert.equal((await configured.queryOrder(ref)).neutralStatus, 'issued');
    reply = query(8);
    assert.equal((await configured.queryOrder(ref)).neutralStatus, 'used');
    reply = query(9);
    await assert.rejects(configured.queryOrder(ref), UnknownSupplierStateError);
  });

  it('a mapping to a status that does not exist is a config error', () => {
    assert.throws(() => adapter({ statusMapping: { orderStatus: { '3': 'fine' as never } } }), SupplierConfigError);
  });
});

describe('lianhe notifications', () => {
  // Notices need no server: any base URL will do.
  const a = new LianheAdapter({ baseUrl: 'http://127.0.0.1:1', partnerId: 508, apiName: 'test', clientSecret: SECRET }, clock);
  const notify = (payload: unknown, opts: { secret?: string; date?: string } = {}) => {
    const date = opts.date ?? new Date(NOW).toUTCString();
    const sig = lianheSignature(opts.secret ?? SECRET, 'POST', '/openapi/index.php?method=notify', date);
    return a.parseCallback({
      method: 'POST',
      path: '/callbacks/lianhe',
      query: {},
      headers: { date, authorization: `LH test:${sig}`, 'content-type': 'application/json' },
      rawBody: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
    });
  };

  it('reNotify rejected (20000) is a refund audit refusal with the reason', () => {
    const r = notify({ code: 20000, describe: '退款审核已驳回', method: 'reNotify', body: { orderId: 'TB1', LHOrderId: '15354', orderStatus: 7, reStatus: 4 } });
    assert.ok(r.ok && r.callback.type === 'refund_audit');
    assert.equal(r.callback.approved, false);
    assert.equal(r.callback.reason, '退款审核已驳回 (reStatus 4)');
    assert.equal(r.reply.body, 'success');
  });

  it('reNotify approved (10000) carries this and cumulative quantities', () => {
    const r = notify({ code: 10000, method: 'reNotify', body: { orderId: 'TB1', LHOrderId: '15354', orderStatus: 6, quantity: 2, reQuantity: 3 } });
    assert.ok(r.ok && r.callback.type === 'refund_audit' && r.callback.approved);
    assert.equal(r.callback.quantity, 2);
    assert.equal(r.callback.cumulativeRefunded, 3);
  });

  it('snNotify keys dedup on the cumulative used quantity', () => {
    const one = notify({ code: 10000, method: 'snNotify', body: { orderId: 'TB1', LHOrderId: '15354', orderStatus: 8, orderQuantity: 3, usedQuantity: 1, sncode: '' } });
    const two = notify({ code: 10000, method: 'snNotify', body: { orderId: 'TB1', LHOrderId: '15354', orderStatus: 9, orderQuantity: 3, usedQuantity: 3, sncode: '' } });
    assert.ok(one.ok && two.ok && one.callback.type === 'admission' && two.callback.type === 'admission');
    assert.equal(two.callback.totalUsed, 3);
    assert.notEqual(one.callback.dedupKey, two.callback.dedupKey);
  });

  it('refuses wrong secret, stale Date, non-JSON, unknown method and unknown codes', () => {
    const ok = { code: 10000, method: 'snNotify', body: { orderId: 'TB1', LHOrderId: '1', usedQuantity: 1 } };
    assert.equal((notify(ok, { secret: 'nope' }) as { reason?: string }).reason, 'bad_signature');
    assert.equal((notify(ok, { date: new Date(NOW - 3_600_000).toUTCString() }) as { reason?: string }).reason, 'bad_signature');
    assert.equal((notify('{oops') as { reason?: string }).reason, 'malformed');
    assert.equal((notify({ ...ok, method: 'other' }) as { reason?: string }).reason, 'unknown_notice');
    assert.equal((notify({ code: 99, method: 'reNotify', body: { orderId: 'TB1' } }) as { reason?: string }).reason, 'malformed');
    assert.equal(notify(ok, { secret: 'nope' }).reply.body, 'failure');
  });
});
