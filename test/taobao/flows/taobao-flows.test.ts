import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OrderState } from '../../../src/domain/model';
import { listOrderEvents } from '../../../src/outbox/outbox';
import { InboundMessageEntity } from '../../../src/persistence/entities/inbound-message.entity';
import { OperatorExceptionEntity } from '../../../src/persistence/entities/operator-exception.entity';
import { OrderEntity } from '../../../src/persistence/entities/order.entity';
import { VoucherEntity } from '../../../src/persistence/entities/voucher.entity';
import { WorkItemEntity } from '../../../src/persistence/entities/work-item.entity';
import { formatTaobaoTime } from '../../../src/taobao/taobao-time';
import { LIANHE_ITEM, newTaobaoOrderId, sendFields, startFlowHarness, TOP_IDENTITY, type FlowHarness } from './flow-harness';

const harnesses: FlowHarness[] = [];
after(async () => {
  for (const h of harnesses) await h.close();
});

async function harness(kind: 'sqlite' | 'mysql', opts: Parameters<typeof startFlowHarness>[1] = {}): Promise<FlowHarness> {
  const h = await startFlowHarness(kind, opts);
  harnesses.push(h);
  return h;
}

async function orderOf(h: FlowHarness, taobaoOrderId: string): Promise<OrderEntity> {
  const o = await h.db.read((em) => em.findOne(OrderEntity, { where: { taobaoOrderId } }));
  assert.ok(o, `order ${taobaoOrderId} stored`);
  return o;
}

async function eventTypes(h: FlowHarness, orderId: string): Promise<string[]> {
  return (await h.db.read((em) => listOrderEvents(em, orderId))).map((e) => e.type);
}

function counter(h: FlowHarness, method: string, result: string): Promise<number> {
  return h.metrics.taobaoNotices.get().then((m) => m.values.find((v) => v.labels.method === method && v.labels.result === result)?.value ?? 0);
}

/** A send posted, acked, and carried through supplier + TOP send. */
async function issuedOrder(h: FlowHarness, extra: Record<string, string> = {}): Promise<{ tid: string; order: OrderEntity }> {
  const tid = newTaobaoOrderId();
  const fields = sendFields(tid, extra);
  h.top.addOrder({ orderId: tid, token: fields.token!, num: Number(fields.num) });
  const ack = await h.post('send', fields);
  assert.deepEqual(ack.json, { code: 200 });
  await h.drain();
  return { tid, order: await orderOf(h, tid) };
}

for (const kind of ['sqlite', 'mysql'] as const) {
  describe(`send flow end to end (${kind})`, () => {
    it('durably records the order before the ack, then places the supplier order and calls eticket.send once', async () => {
      const h = await harness(kind);
      const tid = newTaobaoOrderId();
      const fields = sendFields(tid);
      h.top.addOrder({ orderId: tid, token: fields.token!, num: 2 });

      const ack = await h.post('send', fields);
      assert.equal(ack.status, 200);
      assert.deepEqual(ack.json, { code: 200 });
      // Committed at the ack: order RECEIVED (GBK Chinese intact), mobile never in clear, placement queued.
      const received = await orderOf(h, tid);
      assert.equal(received.state, OrderState.Received);
      assert.equal(received.itemTitle, '黄山风景区门票');
      assert.equal(received.skuProperties, '门票种类:成人票;门票类型:电子票');
      assert.equal(received.mobileMasked, '138****5678');
      assert.ok(received.mobileCipher && !received.mobileCipher.includes('13812345678'));
      assert.equal(h.protector.decrypt(received.mobileCipher!), '13812345678');
      assert.equal(received.totalFeeFen, 38000);
      assert.equal(received.unitPriceFen, 19000);
      assert.equal(received.consumeType, 2);
      assert.equal(received.sendType, 2);
      const inbound = await h.db.read((em) => em.find(InboundMessageEntity, { where: { source: 'taobao' } }));
      assert.equal(inbound.length, 1);
      assert.equal(inbound[0]!.responseBody, '{"code":200}');
      assert.equal(h.top.calls.length, 0, 'no TOP call inside the notice request');

      await h.drain();
      const issued = await orderOf(h, tid);
      assert.equal(issued.state, OrderState.Issued);
      assert.equal(issued.supplier, 'sandbox');
      assert.ok(issued.supplierOrderId?.startsWith('SBX-'));
      const vouchers = await h.db.read((em) => em.find(VoucherEntity, { where: { orderId: issued.id } }));
      assert.equal(vouchers.reduce((s, v) => s + v.total, 0), 2);
      const sends = h.top.callsOf('taobao.vmarket.eticket.send');
      assert.equal(sends.length, 1);
      assert.equal(sends[0]!.params['verify_codes'], vouchers.map((v) => `${v.code}:${v.total}`).join(','));
      assert.equal(sends[0]!.params['token'], fields.token);
      assert.equal(sends[0]!.params['codemerchant_id'], TOP_IDENTITY.codemerchantId);
      assert.equal(h.top.order(tid).sent, true);
      assert.deepEqual(await eventTypes(h, issued.id), ['order.issued', 'code.sent']);
      assert.equal(await counter(h, 'send', 'ok'), 1);
    });
  });
}

for (const kind of ['sqlite', 'mysql'] as const) {
  describe(`Taobao notice repeats (${kind})`, () => {
    it('a repeated notice gets the same answer and has no second effect; a send under another key makes no second order', async () => {
      const h = await harness(kind);
      const tid = newTaobaoOrderId();
      const fields = sendFields(tid);
      h.top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
      const first = await h.post('send', fields, { now: Date.now() - 5_000 });
      const repeat = await h.post('send', fields); // re-stamped and re-signed, like Taobao's retries
      assert.equal(repeat.text, first.text);
      const other = await h.post('send', { ...fields, item_title: '黄山风景区门票(改)' });
      assert.deepEqual(other.json, { code: 200 });
      const counts = await h.db.read(async (em) => ({
        orders: await em.count(OrderEntity, { where: { taobaoOrderId: tid } }),
        inbound: await em.count(InboundMessageEntity),
        work: await em.count(WorkItemEntity),
      }));
      assert.deepEqual(counts, { orders: 1, inbound: 2, work: 1 });
      assert.equal(await counter(h, 'send', 'duplicate'), 1);
      await h.drain();
      assert.equal(h.top.callsOf('taobao.vmarket.eticket.send').length, 1);
      assert.equal(h.sandbox.orderCount, 1);
    });
  });
}

describe('Taobao notices (sqlite)', () => {
  it('bad or missing sign -> {"code":501}, invalid -> 400; nothing recorded, metric counted', async () => {
    const h = await harness('sqlite');
    const tid = newTaobaoOrderId();
    const forged = await h.post('send', sendFields(tid), { sign: 'ABCDEF0123456789ABCDEF0123456789' });
    assert.equal(forged.text, '{"code":501}');
    const unsigned = await h.post('send', sendFields(tid), { sign: null });
    assert.equal(unsigned.text, '{"code":501}');
    const stale = await h.post('send', sendFields(tid), { now: Date.now() - 3 * 24 * 3600_000 });
    assert.equal(stale.status, 400);
    assert.match(stale.text, /STALE_TIMESTAMP/);
    const missing = await h.post('send', { ...sendFields(tid), token: '' });
    assert.equal(missing.status, 400);
    assert.match(missing.text, /token/);
    const unknown = await h.post('heartBeat', sendFields(tid));
    assert.equal(unknown.status, 400);
    const garbage = await h.postRaw(Buffer.from('a=%ZZ'), 'application/x-www-form-urlencoded');
    assert.equal(garbage.status, 400);
    const counts = await h.db.read(async (em) => ({ orders: await em.count(OrderEntity), inbound: await em.count(InboundMessageEntity), work: await em.count(WorkItemEntity) }));
    assert.deepEqual(counts, { orders: 0, inbound: 0, work: 0 });
    assert.equal(await counter(h, 'send', 'bad_sign'), 2);
    assert.equal(await counter(h, 'send', 'invalid'), 2);
  });

  it('type=1: no clear mobile stored, no supplier SMS (Lianhe smsfrom=1), Taobao still gets the codes', async () => {
    const h = await harness('sqlite');
    const tid = newTaobaoOrderId();
    const fields = sendFields(tid, { type: '1', mobile: '', encrypt_mobile: '138****5678', md5_mobile: 'e10adc3949ba59abbe56e057f20f883e', outer_iid: LIANHE_ITEM.outerIid, sub_outer_iid: LIANHE_ITEM.subOuterIid, num: '1', total_fee: '120.50' });
    h.top.addOrder({ orderId: tid, token: fields.token!, num: 1 });
    assert.deepEqual((await h.post('send', fields)).json, { code: 200 });
    const o = await orderOf(h, tid);
    assert.equal(o.noticeType, 1);
    assert.equal(o.mobileCipher, null);
    assert.equal(o.mobileHash, null);
    assert.equal(o.mobileMasked, '138****5678');
    await h.drain();
    const lh = h.lianheSim.orders.get(o.id);
    assert.ok(lh, 'placed at Lianhe');
    assert.equal(lh.smsSent, 0, 'Lianhe told not to send the SMS');
    assert.equal((await orderOf(h, tid)).state, OrderState.Issued);
    assert.equal(h.top.order(tid).sent, true);

    // A resend of a type=1 order goes straight to Taobao: no supplier resend work at all.
    assert.deepEqual((await h.post('resend', { order_id: tid, token: fields.token!, left_num: '1', type: '1' })).json, { code: 200 });
    await h.drain();
    const kinds = (await h.db.read((em) => em.find(WorkItemEntity, { where: { orderId: o.id }, order: { id: 'ASC' } }))).map((w) => w.kind);
    assert.deepEqual(kinds, ['supplier.place_order', 'taobao.send', 'taobao.resend']);
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.resend').length, 1);
  });

  it('resend: 200 with the same codes, at most once a GMT+8 day; 300 when the usable codes differ', async () => {
    const h = await harness('sqlite');
    const { tid, order } = await issuedOrder(h);
    const token = `tok${tid}`;
    const r1 = await h.post('resend', { order_id: tid, token, left_num: '2' });
    assert.deepEqual(r1.json, { code: 200 });
    await h.drain();
    const resends = h.top.callsOf('taobao.vmarket.eticket.resend');
    assert.equal(resends.length, 1);
    const code = (await h.db.read((em) => em.find(VoucherEntity, { where: { orderId: order.id } })))[0]!.code;
    assert.equal(resends[0]!.params['verify_codes'], `${code}:2`);

    // The same day again (a new notice, not a repeat): acknowledged, not resent.
    const r2 = await h.post('resend', { order_id: tid, token, left_num: '2', seller_nick: '再次' });
    assert.deepEqual(r2.json, { code: 200 });
    await h.drain();
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.resend').length, 1);

    // The code got used up at the gate and a new one exists: tomorrow's resend differs -> 300.
    await h.db.transaction(async (em) => {
      await em.update(VoucherEntity, { orderId: order.id, code }, { remaining: 0 });
      await em.insert(VoucherEntity, { orderId: order.id, code: '990011223344', qrPayload: null, total: 1, remaining: 1, status: 'active', createdAt: Date.now() });
      await em.update(OrderEntity, { id: order.id }, { lastResendAt: Date.now() - 2 * 24 * 3600_000 });
    });
    const r3 = await h.post('resend', { order_id: tid, token, left_num: '1' });
    assert.deepEqual(r3.json, { code: 300 });
    await h.drain();
    const last = h.top.callsOf('taobao.vmarket.eticket.resend').at(-1)!;
    assert.equal(last.params['verify_codes'], '990011223344:1');
  });

  it('modified: the new mobile is stored protected and the supplier resends to it, then eticket.resend', async () => {
    const h = await harness('sqlite');
    const { tid, order } = await issuedOrder(h);
    const ack = await h.post('modified', { order_id: tid, token: `tok${tid}`, left_num: '2', mobile: '13987654321' });
    assert.deepEqual(ack.json, { code: 200 });
    const changed = await orderOf(h, tid);
    assert.equal(changed.mobileMasked, '139****4321');
    assert.equal(h.protector.decrypt(changed.mobileCipher!), '13987654321');
    await h.drain();
    const kinds = (await h.db.read((em) => em.find(WorkItemEntity, { where: { orderId: order.id }, order: { id: 'ASC' } }))).map((w) => `${w.kind}:${w.status}`);
    assert.deepEqual(kinds, ['supplier.place_order:done', 'taobao.send:done', 'supplier.resend:done', 'taobao.resend:done']);
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.resend').length, 1);
  });

  it('cancel and order_modify go to the refund flow inside the notice transaction', async () => {
    const h = await harness('sqlite');
    const { tid, order } = await issuedOrder(h, { num: '3', total_fee: '300.00' });
    assert.deepEqual((await h.post('cancel', { order_id: tid, token: `tok${tid}`, cancel_num: '1' })).json, { code: 200 });
    let o = await orderOf(h, tid);
    assert.equal(o.refundPending, 1);
    assert.equal(o.available, 2);

    const later = o.validEnd + 10 * 24 * 3600_000;
    const data = JSON.stringify({ valid_start: formatTaobaoTime(o.validStart), valid_ends: formatTaobaoTime(later) });
    assert.deepEqual((await h.post('order_modify', { order_id: tid, token: `tok${tid}`, sub_method: '1', data })).json, { code: 200 });
    o = await orderOf(h, tid);
    assert.equal(Math.floor(o.validEnd / 1000), Math.floor(later / 1000));

    assert.deepEqual((await h.post('order_modify', { order_id: tid, token: `tok${tid}`, sub_method: '2' })).json, { code: 200 });
    o = await orderOf(h, tid);
    assert.equal(o.refundPending, 3, 'rights protection refunds everything still unused');
    assert.equal(o.available, 0);
    assert.ok((await eventTypes(h, order.id)).filter((t) => t === 'refund.requested').length >= 2);

    // A cancel for an order we never heard of is acknowledged and raised to operators.
    assert.deepEqual((await h.post('cancel', { order_id: newTaobaoOrderId(), token: 'tokX', cancel_num: '1' })).json, { code: 200 });
    const ex = await h.db.read((em) => em.find(OperatorExceptionEntity, { where: { kind: 'notice_for_unknown_order' } }));
    assert.equal(ex.length, 1);
  });

  it('TOP retryable errors are retried until success; a terminal error parks the item with an operator exception', async () => {
    const h = await harness('sqlite');
    const tid = newTaobaoOrderId();
    const fields = sendFields(tid);
    h.top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
    h.top.failNext('taobao.vmarket.eticket.send', 2, 'isv.eticket-service-unavailable:op-failed');
    await h.post('send', fields);
    await h.drain();
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.send').length, 3);
    assert.equal(h.top.order(tid).sent, true);
    const sendItem = await h.db.read((em) => em.findOne(WorkItemEntity, { where: { kind: 'taobao.send' } }));
    assert.equal(sendItem?.status, 'done');
    assert.equal(sendItem?.attempts, 3);

    const tid2 = newTaobaoOrderId();
    const f2 = sendFields(tid2);
    h.top.addOrder({ orderId: tid2, token: f2.token!, num: 2 });
    h.top.closeOrder(tid2);
    await h.post('send', f2);
    await h.drain();
    const o2 = await orderOf(h, tid2);
    const parked = await h.db.read((em) => em.findOne(WorkItemEntity, { where: { orderId: o2.id, kind: 'taobao.send' } }));
    assert.equal(parked?.status, 'parked');
    assert.match(parked?.lastError ?? '', /invalid-order-status/);
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.send').filter((c) => c.params['order_id'] === tid2).length, 1);
    const ex = await h.db.read((em) => em.find(OperatorExceptionEntity, { where: { orderId: o2.id, kind: 'work_parked' } }));
    assert.equal(ex.length, 1);
  });

  it('runner stopped between ack and callback, or mid-call: after restart Taobao gets the codes exactly once', async () => {
    const h = await harness('sqlite');
    const tid = newTaobaoOrderId();
    const fields = sendFields(tid);
    h.top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
    // The TOP send reaches Taobao but the answer never comes; the runner is stopped mid-call.
    h.top.hangNext('taobao.vmarket.eticket.send', 1, { applyEffect: true });
    await h.post('send', fields);
    const first = h.newRunner({ leaseMs: 200 });
    first.start();
    const deadline = Date.now() + 10_000;
    while (h.top.callsOf('taobao.vmarket.eticket.send').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await first.stop(0);
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.send').length, 1);
    const stuck = await h.db.read((em) => em.findOne(WorkItemEntity, { where: { kind: 'taobao.send' } }));
    assert.equal(stuck?.status, 'in_flight');

    await new Promise((r) => setTimeout(r, 250)); // the dead runner's lease runs out
    await h.drain(h.newRunner());
    const sendItem = await h.db.read((em) => em.findOne(WorkItemEntity, { where: { kind: 'taobao.send' } }));
    assert.equal(sendItem?.status, 'done');
    assert.equal(h.top.order(tid).codes.length, 1, 'codes given to Taobao once');
    const o = await orderOf(h, tid);
    assert.deepEqual(await eventTypes(h, o.id), ['order.issued', 'code.sent']);

    // Stopped between ack and callback: nothing ran; a new runner does it all once.
    const tid2 = newTaobaoOrderId();
    const f2 = sendFields(tid2);
    h.top.addOrder({ orderId: tid2, token: f2.token!, num: 2 });
    await h.post('send', f2);
    await h.drain(h.newRunner());
    assert.equal(h.top.callsOf('taobao.vmarket.eticket.send').filter((c) => c.params['order_id'] === tid2).length, 1);
  });

  it('unmapped product: operator exception, bounded retries, then failsend', async () => {
    const h = await harness('sqlite', { unmappedProductAttempts: 3 });
    const tid = newTaobaoOrderId();
    const fields = sendFields(tid, { outer_iid: 'NO-SUCH-ITEM', sub_outer_iid: 'NO-SUCH-SKU' });
    h.top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
    await h.post('send', fields);
    await h.drain();
    const o = await orderOf(h, tid);
    assert.equal(o.state, OrderState.IssueFailed);
    const ex = await h.db.read((em) => em.find(OperatorExceptionEntity, { where: { orderId: o.id, kind: 'product_unmapped' } }));
    assert.equal(ex.length, 1);
    const place = await h.db.read((em) => em.findOne(WorkItemEntity, { where: { orderId: o.id, kind: 'supplier.place_order' } }));
    assert.equal(place?.attempts, 3);
    const fs = h.top.callsOf('taobao.vmarket.eticket.failsend');
    assert.equal(fs.length, 1);
    assert.equal(fs[0]!.params['order_id'], tid);
    assert.equal(h.top.order(tid).failSent, true);
    assert.deepEqual(await eventTypes(h, o.id), ['exception.raised', 'order.issue-failed']);
    assert.equal(h.sandbox.orderCount, 0);
  });

  it('commit failure -> 500 so Taobao retries', async () => {
    const h = await harness('sqlite');
    await h.db.close();
    const r = await h.post('send', sendFields(newTaobaoOrderId()));
    assert.equal(r.status, 500);
    assert.equal(r.text, '{"code":500}');
    assert.equal(await counter(h, 'send', 'error'), 1);
  });
});
