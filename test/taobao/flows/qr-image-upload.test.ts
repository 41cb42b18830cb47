/**
 * qrcode.upload (issue 3): a Zhiyoubao order's QR image (QUERY_IMG_URL_REQ, then a GET of that URL on the
 * supplier simulator) is uploaded to the signature-verifying TopSimulator once, and its file name goes out as
 * `qr_images` with eticket.send / resend, aligned with verify_codes, also across retries.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Gateway } from '../../../src/app';
import { configSchema } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import { OrderEntity } from '../../../src/persistence/entities/order.entity';
import { VoucherEntity } from '../../../src/persistence/entities/voucher.entity';
import { WorkItemEntity } from '../../../src/persistence/entities/work-item.entity';
import { QR_PNG, ZhiyoubaoSimulator } from '../../support/supplier-simulators/zhiyoubao-simulator';
import { buildNotice } from '../../support/taobao-notices';
import { TopSimulator } from '../../support/top-simulator';
import { ITEM, NOTICE_KEY, newTaobaoOrderId, sendFields, TOP_IDENTITY } from './flow-harness';

const SEND = 'taobao.vmarket.eticket.send';
const RESEND = 'taobao.vmarket.eticket.resend';
const UPLOAD = 'taobao.vmarket.eticket.qrcode.upload';
const ZYB_ITEM = { outerIid: 'ZYB-QR', subOuterIid: 'ZYB-QR-1', goods: 'PST20170001' };

const cleanups: Array<() => Promise<void> | void> = [];
let top: TopSimulator;
let zyb: ZhiyoubaoSimulator;
let gw: Gateway;

before(async () => {
  top = new TopSimulator(TOP_IDENTITY);
  await top.start();
  cleanups.push(() => top.stop());
  zyb = await new ZhiyoubaoSimulator().start();
  cleanups.push(() => zyb.close());
  const dir = mkdtempSync(join(tmpdir(), 'tg-qr-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const suppliersFile = join(dir, 'suppliers.json');
  writeFileSync(
    suppliersFile,
    JSON.stringify({
      'zyb-test': { type: 'zhiyoubao', endpoint: zyb.endpoint, corpCode: zyb.corpCode, userName: zyb.userName, privateKey: zyb.privateKey, timeoutMs: 2000 },
      sandbox: { type: 'sandbox' },
    }),
  );
  const catalogFile = join(dir, 'catalog.yaml');
  const product = (outer: string, sub: string, supplier: string, type: string) => `
  - outer_iid: ${outer}
    sub_outer_iid: ${sub}
    supplier: ${supplier}
    ticket_type: ${type}
    scenic_spot: HS-GATE
    check_methods: [CODE, QR]
    real_name_required: false
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 10000 }`;
  writeFileSync(catalogFile, `products:${product(ZYB_ITEM.outerIid, ZYB_ITEM.subOuterIid, 'zyb-test', ZYB_ITEM.goods)}${product(ITEM.outerIid, ITEM.subOuterIid, 'sandbox', ITEM.ticketType)}\n`);
  const config = configSchema.parse({
    DATA_DIR: join(dir, 'data'),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    LOG_LEVEL: 'silent',
    SHUTDOWN_GRACE_MS: '1000',
    SUPPLIERS_FILE: suppliersFile,
    PRODUCT_CATALOG_FILE: catalogFile,
    TAOBAO_TOP_URL: top.url,
    TAOBAO_APP_KEY: TOP_IDENTITY.appKey,
    TAOBAO_APP_SECRET: TOP_IDENTITY.appSecret,
    TAOBAO_SESSION: TOP_IDENTITY.session,
    TAOBAO_CODEMERCHANT_ID: TOP_IDENTITY.codemerchantId,
    TAOBAO_NOTICE_KEY: NOTICE_KEY,
  });
  gw = await Gateway.start({ config, logger: createLogger('silent'), defaultMetrics: false });
  cleanups.push(() => gw.stop());
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function postNotice(method: string, fields: Record<string, string>): Promise<string> {
  const n = buildNotice(method, fields, NOTICE_KEY);
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}/taobao/notices`, { method: 'POST', headers: { 'content-type': n.contentType }, body: n.body, signal: AbortSignal.timeout(10_000) });
  return res.text();
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A Zhiyoubao send notice acked; returns the Taobao order id and its token. */
async function sendZybOrder(extra: Record<string, string> = {}): Promise<{ tid: string; token: string }> {
  const tid = newTaobaoOrderId();
  const fields = sendFields(tid, { outer_iid: ZYB_ITEM.outerIid, sub_outer_iid: ZYB_ITEM.subOuterIid, ...extra });
  top.addOrder({ orderId: tid, token: fields.token!, num: Number(fields.num) });
  assert.equal(await postNotice('send', fields), '{"code":200}');
  return { tid, token: fields.token! };
}

const callsFor = (method: string, tid?: string) => top.callsOf(method).filter((c) => tid === undefined || c.params['order_id'] === tid);

async function orderOf(tid: string): Promise<OrderEntity> {
  const o = await gw.db.read((em) => em.findOne(OrderEntity, { where: { taobaoOrderId: tid } }));
  assert.ok(o);
  return o;
}

async function workPayload(orderId: string, kind: string): Promise<{ codes: Array<{ code: string }>; qrImages?: string[] }> {
  const row = await gw.db.read((em) => em.findOne(WorkItemEntity, { where: { orderId, kind }, order: { id: 'DESC' } }));
  assert.ok(row, `${kind} work exists`);
  return JSON.parse(row.payload) as { codes: Array<{ code: string }>; qrImages?: string[] };
}

describe('QR images from the supplier go to Taobao with the codes', () => {
  it('uploads the image once and sends its file name aligned with the code; a retried send reuses the stored name', async () => {
    const uploadsBefore = callsFor(UPLOAD).length;
    const imagesBefore = zyb.imageRequests;
    top.failNext(SEND, 1, 'isv.eticket-service-unavailable:op-failed');
    const { tid } = await sendZybOrder();
    await until('codes sent', () => top.order(tid).sent);

    const order = await orderOf(tid);
    const vouchers = await gw.db.read((em) => em.find(VoucherEntity, { where: { orderId: order.id } }));
    assert.equal(vouchers.length, 1);
    assert.equal(zyb.mustOrder(order.id).assistCheckNo, vouchers[0]!.code);

    const uploads = callsFor(UPLOAD).slice(uploadsBefore);
    assert.equal(uploads.length, 1, 'one upload despite the retried send');
    assert.equal(uploads[0]!.files['img_bytes'], QR_PNG.length, 'the bytes the supplier served');
    assert.equal(uploads[0]!.params['code_merchant_id'], TOP_IDENTITY.codemerchantId);
    assert.equal(zyb.imageRequests - imagesBefore, 1);
    assert.ok(zyb.transactions.includes('QUERY_IMG_URL_REQ'));

    const sends = callsFor(SEND, tid);
    assert.equal(sends.length, 2, 'first send refused (op-failed), then retried');
    const fileName = (await workPayload(order.id, 'taobao.send')).qrImages?.[0];
    assert.match(fileName ?? '', /^qr_\d+\.png$/);
    for (const s of sends) {
      assert.equal(s.params['verify_codes'], `${vouchers[0]!.code}:2`);
      assert.equal(s.params['qr_images'], fileName, 'qr_images aligned with verify_codes on every attempt');
    }
  });

  it('a resend carries the same QR file name without uploading again', async () => {
    const { tid, token } = await sendZybOrder();
    await until('codes sent', () => top.order(tid).sent);
    const order = await orderOf(tid);
    const sentWith = callsFor(SEND, tid)[0]!.params['qr_images'];
    assert.ok(sentWith);
    const uploadsBefore = callsFor(UPLOAD).length;

    assert.equal(await postNotice('resend', { order_id: tid, token, left_num: '2' }), '{"code":200}');
    await until('resend reached Taobao', () => callsFor(RESEND, tid).length > 0);
    const resend = callsFor(RESEND, tid)[0]!;
    assert.equal(resend.params['qr_images'], sentWith);
    assert.equal(resend.params['verify_codes'], callsFor(SEND, tid)[0]!.params['verify_codes']);
    assert.equal(callsFor(UPLOAD).length, uploadsBefore, 'no second upload');
    assert.deepEqual((await workPayload(order.id, 'taobao.resend')).qrImages, [sentWith]);
  });

  it('an image the supplier cannot serve yet is fetched again on the retry, then uploaded', async () => {
    const imagesBefore = zyb.imageRequests;
    zyb.imageFailures = 1;
    const { tid } = await sendZybOrder();
    await until('codes sent', () => top.order(tid).sent);
    assert.equal(zyb.imageRequests - imagesBefore, 2);
    const sends = callsFor(SEND, tid);
    assert.equal(sends.length, 1, 'no send before the image was had');
    assert.match(sends[0]!.params['qr_images'] ?? '', /^qr_\d+\.png$/);
  });

  it('an image that never comes: after the attempts the codes go out without it', async () => {
    const uploadsBefore = callsFor(UPLOAD).length;
    zyb.imageFailures = 100;
    try {
      const { tid } = await sendZybOrder();
      await until('codes sent', () => top.order(tid).sent, 30_000);
      const sends = callsFor(SEND, tid);
      assert.equal(sends.length, 1);
      assert.equal(sends[0]!.params['qr_images'], undefined);
      assert.ok(sends[0]!.params['verify_codes']);
      assert.equal(callsFor(UPLOAD).length, uploadsBefore);
      const order = await orderOf(tid);
      assert.equal((await workPayload(order.id, 'taobao.send')).qrImages, undefined);
    } finally {
      zyb.imageFailures = 0;
    }
  });

  it('a supplier with no downloadable image (the sandbox) sends codes only, with no upload', async () => {
    const uploadsBefore = callsFor(UPLOAD).length;
    const tid = newTaobaoOrderId();
    const fields = sendFields(tid);
    top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
    assert.equal(await postNotice('send', fields), '{"code":200}');
    await until('codes sent', () => top.order(tid).sent);
    assert.equal(callsFor(SEND, tid)[0]!.params['qr_images'], undefined);
    assert.equal(callsFor(UPLOAD).length, uploadsBefore);
  });
});
