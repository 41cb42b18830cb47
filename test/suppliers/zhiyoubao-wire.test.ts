/** Zhiyoubao wire details: signature vectors, XML shapes, hardened parsing, audit wording, callbacks. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { SupplierCallError, UnknownSupplierStateError } from '../../src/suppliers/supplier-adapter';
import { interpretRetreatStatus, ZhiyoubaoAdapter } from '../../src/suppliers/zhiyoubao/zhiyoubao-adapter';
import { buildPwbRequest, formatBusinessTime, parsePwbResponse, signXmlMsg } from '../../src/suppliers/zhiyoubao/pwb-xml';

const KEY = 'zyb-key';
const fixedClock = { now: () => Date.UTC(2025, 4, 1, 2, 3, 4) }; // 10:03:04 in GMT+8

/** A capture server: records the decoded form fields and answers with whatever `reply` says. */
let server: Server;
let url = '';
let captured: { xmlMsg: string; sign: string } | undefined;
let reply = '';

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      captured = { xmlMsg: form.get('xmlMsg') ?? '', sign: form.get('sign') ?? '' };
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' });
      res.end(reply);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/boss/service/code.htm`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function adapter(): ZhiyoubaoAdapter {
  return new ZhiyoubaoAdapter({ endpoint: url, corpCode: 'TESTFX', userName: 'admin', privateKey: KEY, timeoutMs: 2_000 }, fixedClock);
}

const ref = { ourOrderCode: 'TB2025050100001', supplierOrderId: 'ZYB1' };
const xmlReader = new XMLParser({ parseTagValue: false, isArray: (n) => n === 'credential' || n === 'ticketOrder' });

describe('zhiyoubao signing', () => {
  it('signs lower(hex(md5("xmlMsg=" + xml + key))) — fixed vector', () => {
    // Vector computed with coreutils md5sum.
    assert.equal(signXmlMsg('<PWBRequest><transactionName>SEND_SM_REQ</transactionName></PWBRequest>', 'TESTKEY'), 'a4e5b2abb1650ecb30e9133c6dedf7ea');
  });

  it('formats requestTime in GMT+8', () => {
    assert.equal(formatBusinessTime(Date.UTC(2025, 11, 31, 16, 0, 1)), '2026-01-01 00:00:01');
  });

  it('builds the envelope in order and escapes text', () => {
    const xml = buildPwbRequest('SEND_SM_REQ', { corpCode: 'C&D', userName: 'u<1>' }, '2025-05-01 10:00:00', { orderRequest: { order: { orderCode: 'A' } } });
    assert.equal(
      xml,
      '<PWBRequest><transactionName>SEND_SM_REQ</transactionName><header><application>SendCode</application><requestTime>2025-05-01 10:00:00</requestTime></header><identityInfo><corpCode>C&amp;D</corpCode><userName>u&lt;1&gt;</userName></identityInfo><orderRequest><order><orderCode>A</orderCode></order></orderRequest></PWBRequest>',
    );
  });
});

describe('zhiyoubao requests on the wire', () => {
  it('SEND_CODE_REQ carries our order code, yuan prices, occDate, goodsCode and one credential per ticket', async () => {
    reply = `<PWBResponse><transactionName>SEND_CODE_RES</transactionName><code>0</code><description>成功</description><orderResponse><order><orderCode>ZYB9</orderCode><assistCheckNo>5566778899</assistCheckNo><payStatus>payed</payStatus><ticketOrders><ticketOrder><orderCode>ZYBS9</orderCode><quantity>2</quantity></ticketOrder></ticketOrders></order></orderResponse></PWBResponse>`;
    const res = await adapter().placeOrder({
      ourOrderCode: 'TB-7',
      visitorName: '李四',
      mobile: '13800138000',
      idCards: [
        { name: '李四', id: '110101199003071234' },
        { name: '王五', id: '11010119900307567X' },
      ],
      supplierTicketType: 'PST20170002',
      quantity: 2,
      unitPriceFen: 12_050,
      visitDate: '2025-05-01',
    });
    assert.deepEqual(res, {
      kind: 'placed',
      supplierOrderId: 'ZYB9',
      supplierSubOrderIds: ['ZYBS9'],
      vouchers: [{ code: '5566778899', quantity: 2 }],
      supplierState: 'payed',
      alreadyExisted: false,
    });
    assert.ok(captured);
    assert.equal(captured.sign, signXmlMsg(captured.xmlMsg, KEY));
    const doc = xmlReader.parse(captured.xmlMsg).PWBRequest;
    assert.equal(doc.transactionName, 'SEND_CODE_REQ');
    assert.equal(doc.header.requestTime, '2025-05-01 10:03:04');
    assert.deepEqual(doc.identityInfo, { corpCode: 'TESTFX', userName: 'admin' });
    const order = doc.orderRequest.order;
    assert.equal(order.orderCode, 'TB-7');
    assert.equal(order.orderPrice, '241.00');
    assert.equal(order.payMethod, 'vm');
    const ticket = order.ticketOrders.ticketOrder[0];
    assert.equal(ticket.price, '120.50');
    assert.equal(ticket.totalPrice, '241.00');
    assert.equal(ticket.quantity, '2');
    assert.equal(ticket.occDate, '2025-05-01');
    assert.equal(ticket.goodsCode, 'PST20170002');
    assert.deepEqual(ticket.credentials.credential.map((c: { name: string }) => c.name), ['李四', '王五']);
  });

  it('RETURN_TICKET_NUM_NEW_REQ sends returnNum and our refund id, and returns the batch number', async () => {
    reply = '<PWBResponse><transactionName>RETURN_TICKET_NUM_NEW_RES</transactionName><code>0</code><description>成功</description><retreatBatchNo>RB77</retreatBatchNo></PWBResponse>';
    const res = await adapter().requestRefund(ref, { refundId: 'RF-1', quantity: 2 });
    assert.deepEqual(res, { kind: 'pending_audit', batchNo: 'RB77' });
    const doc = xmlReader.parse(captured!.xmlMsg).PWBRequest;
    assert.equal(doc.transactionName, 'RETURN_TICKET_NUM_NEW_REQ');
    assert.deepEqual(doc.orderRequest.returnTicket, { orderCode: ref.ourOrderCode, returnNum: '2', thirdReturnCode: 'RF-1' });
  });

  it('a whole-order cancel uses SEND_CODE_CANCEL_NEW_REQ', async () => {
    reply = '<PWBResponse><transactionName>SEND_CODE_CANCEL_RES</transactionName><code>0</code><description>成功</description><retreatBatchNo>RB78</retreatBatchNo></PWBResponse>';
    const res = await adapter().requestRefund(ref, { refundId: 'RF-2', quantity: 3, wholeOrder: true });
    assert.deepEqual(res, { kind: 'pending_audit', batchNo: 'RB78' });
    assert.equal(xmlReader.parse(captured!.xmlMsg).PWBRequest.transactionName, 'SEND_CODE_CANCEL_NEW_REQ');
  });

  it('"accepted" without a retreatBatchNo is malformed, not a pending refund', async () => {
    reply = '<PWBResponse><transactionName>RETURN_TICKET_NUM_NEW_RES</transactionName><code>0</code><description>成功</description></PWBResponse>';
    await assert.rejects(adapter().requestRefund(ref, { refundId: 'RF-3', quantity: 1 }), (e: unknown) => e instanceof SupplierCallError && e.failure === 'malformed_reply' && e.retryable);
  });

  it('a success reply without the voucher code is malformed, never placed', async () => {
    reply = '<PWBResponse><transactionName>SEND_CODE_RES</transactionName><code>0</code><description>成功</description><orderResponse><order><orderCode>ZYB9</orderCode></order></orderResponse></PWBResponse>';
    await assert.rejects(
      adapter().placeOrder({ ourOrderCode: 'X', visitorName: 'a', mobile: '13800138000', supplierTicketType: 'G', quantity: 1, unitPriceFen: 100, visitDate: '2025-05-01' }),
      (e: unknown) => e instanceof SupplierCallError && e.failure === 'malformed_reply' && e.ambiguous,
    );
  });

  it('a refusal masks personal data the supplier echoed', async () => {
    reply = '<PWBResponse><transactionName>SEND_CODE_RES</transactionName><code>5</code><description>手机号13800138000与证件110101199003071234不匹配</description></PWBResponse>';
    const res = await adapter().placeOrder({ ourOrderCode: 'Y', visitorName: 'a', mobile: '13800138000', supplierTicketType: 'G', quantity: 1, unitPriceFen: 100, visitDate: '2025-05-01' });
    assert.equal(res.kind, 'rejected');
    if (res.kind !== 'rejected') return;
    assert.equal(res.supplierCode, '5');
    assert.equal(res.permanent, true);
    assert.ok(!res.message.includes('13800138000') && !res.message.includes('110101199003071234'), res.message);
    assert.match(res.message, /138\*\*\*\*8000/);
  });

  it('refuses DOCTYPE / entity declarations in replies (no XXE, no entity expansion)', async () => {
    reply = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><PWBResponse><code>0</code><description>&x;</description></PWBResponse>';
    await assert.rejects(adapter().resendVoucher(ref), (e: unknown) => e instanceof SupplierCallError && e.failure === 'malformed_reply');
  });
});

describe('zhiyoubao reply parsing', () => {
  it('decodes only the built-in entities and leaves unknown ones literal', () => {
    const r = parsePwbResponse('<PWBResponse><code>0</code><description>a &lt;b&gt; &amp; &#36825; &foo;</description></PWBResponse>');
    assert.equal(r.description, 'a <b> & 这 &foo;');
  });

  it('rejects a reply with no numeric code or the wrong root', () => {
    assert.throws(() => parsePwbResponse('<PWBResponse><description>x</description></PWBResponse>'));
    assert.throws(() => parsePwbResponse('<Other><code>0</code></Other>'));
    assert.throws(() => parsePwbResponse('<PWBResponse><code>0</code>'));
  });

  const status = (code: number, description: string) => parsePwbResponse(`<PWBResponse><code>${code}</code><description>${description}</description><returnNum>2</returnNum></PWBResponse>`);

  it('reads the retreat audit carefully: "审核未通过" is a rejection even though it contains "通过"', () => {
    assert.deepEqual(interpretRetreatStatus(status(0, '审核完成')), { kind: 'approved', quantity: 2 });
    assert.deepEqual(interpretRetreatStatus(status(0, '审核通过')), { kind: 'approved', quantity: 2 });
    assert.deepEqual(interpretRetreatStatus(status(0, '审核未通过')), { kind: 'rejected', reason: '审核未通过' });
    assert.deepEqual(interpretRetreatStatus(status(6, '审核未通过')), { kind: 'rejected', reason: '审核未通过' });
    assert.deepEqual(interpretRetreatStatus(status(6, '等待审核中')), { kind: 'pending' });
    assert.deepEqual(interpretRetreatStatus(status(0, '等待审核中')), { kind: 'pending' });
  });

  it('finished with wording it cannot read is an operator exception, and other codes are faults', () => {
    assert.throws(() => interpretRetreatStatus(status(0, '已处理')), UnknownSupplierStateError);
    assert.throws(() => interpretRetreatStatus(status(2, '批次不存在')), (e: unknown) => e instanceof SupplierCallError && e.failure === 'supplier_error' && !e.retryable);
  });
});

describe('zhiyoubao callbacks', () => {
  const a = new ZhiyoubaoAdapter({ endpoint: 'http://127.0.0.1:1/x', corpCode: 'C', userName: 'U', privateKey: KEY });
  const get = (query: Record<string, string>) => a.parseCallback({ method: 'GET', path: '/cb', query, headers: {}, rawBody: Buffer.alloc(0) });

  it('check notice: md5("order_no=" + order_no + key), vector', () => {
    const r = get({ order_no: 'ORD1', sub_order_no: 'S1', status: 'check', checkNum: '2', returnNum: '0', total: '3', sign: 'b787c103405c01a5d7ded78cbe0e0950' });
    assert.ok(r.ok);
    assert.deepEqual(r.reply, { status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' });
    assert.equal(r.callback.type, 'admission');
    if (r.callback.type === 'admission') {
      assert.equal(r.callback.ourOrderCode, 'ORD1');
      assert.equal(r.callback.subOrderId, 'S1');
      assert.equal(r.callback.count, 2);
    }
    // Upper-case hex is the same signature.
    assert.ok(get({ order_no: 'ORD1', checkNum: '1', sign: 'B787C103405C01A5D7DED78CBE0E0950' }).ok);
  });

  it('a different admission of the same order gets a different dedup key; an identical repeat the same', () => {
    const base = { order_no: 'ORD1', sub_order_no: 'S1', status: 'check', returnNum: '0', total: '3', sign: 'b787c103405c01a5d7ded78cbe0e0950' };
    const one = get({ ...base, checkNum: '1' });
    const oneAgain = get({ ...base, checkNum: '1' });
    const two = get({ ...base, checkNum: '2' });
    assert.ok(one.ok && oneAgain.ok && two.ok);
    assert.equal(one.callback.dedupKey, oneAgain.callback.dedupKey);
    assert.notEqual(one.callback.dedupKey, two.callback.dedupKey);
  });

  it('order finished: md5("order_code=" + order_code + key), vector', () => {
    const r = get({ order_code: 'ORD1', status: 'success', checkNum: '3', returnNum: '0', total: '3', sign: 'bafe29438033ddc23fba910e4ef1df29' });
    assert.ok(r.ok);
    assert.deepEqual(
      { ...r.callback, dedupKey: undefined },
      { type: 'order_finished', ourOrderCode: 'ORD1', status: 'success', usedQuantity: 3, refundedQuantity: 0, totalQuantity: 3, dedupKey: undefined },
    );
  });

  it('refund audit: md5(orderCode + key), and the "orderCode=" variant, vectors', () => {
    const base = { orderCode: 'ORD1', subOrderCode: 'S1', retreatBatchNo: 'RB1', returnNum: '1' };
    const plain = get({ ...base, auditStatus: 'success', sign: '51c4dc0326113276ad7f61db02c3cec3' });
    const prefixed = get({ ...base, auditStatus: 'failure', sign: 'ca26d6f5204a3081b981e8637a6a75ca' });
    assert.ok(plain.ok && prefixed.ok);
    assert.ok(plain.callback.type === 'refund_audit' && plain.callback.approved && plain.callback.batchNo === 'RB1' && plain.callback.quantity === 1);
    assert.ok(prefixed.callback.type === 'refund_audit' && !prefixed.callback.approved);
  });

  it('refuses forged signs, odd audit statuses and unknown notices with "failure"', () => {
    const forged = get({ order_no: 'ORD1', checkNum: '1', sign: '00000000000000000000000000000000' });
    assert.ok(!forged.ok && forged.reason === 'bad_signature' && forged.reply.body === 'failure');
    const missing = get({ order_no: 'ORD1', checkNum: '1' });
    assert.ok(!missing.ok && missing.reason === 'bad_signature');
    const odd = get({ orderCode: 'ORD1', auditStatus: 'maybe', sign: '51c4dc0326113276ad7f61db02c3cec3' });
    assert.ok(!odd.ok && odd.reason === 'malformed');
    const badCount = get({ order_no: 'ORD1', checkNum: '-1', sign: 'b787c103405c01a5d7ded78cbe0e0950' });
    assert.ok(!badCount.ok && badCount.reason === 'malformed');
    const unknown = get({ foo: 'bar' });
    assert.ok(!unknown.ok && unknown.reason === 'unknown_notice');
  });
});
