import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { TopClient, TopRequestError, type TopClientConfig, type TopOutcome } from '../../src/taobao/top-client';
import { parseTaobaoTime } from '../../src/taobao/taobao-time';
import { TopSimulator } from '../support/top-simulator';

const CREDS = { appKey: '23456789', appSecret: 'top-app-secret-xyz', session: 'sess-6100', codemerchantId: '88001' };
const TOKEN = 'd3077e5d86c75a2142f87161a4b4c3ea';
const POS = 'POS_GATE_01';

let sim: TopSimulator;
let orderSeq = 0;

function client(overrides: Partial<TopClientConfig> = {}): TopClient {
  return new TopClient({ routerUrl: sim.url, ...CREDS, timeoutMs: 2000, ...overrides });
}

/** A fresh order at the simulator, codes already sent unless told otherwise. */
async function newOrder(num: number, codes?: Array<{ code: string; num: number }>): Promise<string> {
  const orderId = String(3_000_000_000_000_000 + ++orderSeq);
  sim.addOrder({ orderId, token: TOKEN, num });
  if (codes) {
    const r = await client().send({ orderId, verifyCodes: codes, token: TOKEN });
    assert.equal(r.kind, 'ok');
  }
  return orderId;
}

function expectKind<B, K extends TopOutcome<B>['kind']>(
  outcome: TopOutcome<B>,
  kind: K,
): asserts outcome is Extract<TopOutcome<B>, { kind: K }> {
  assert.equal(outcome.kind, kind, JSON.stringify(outcome));
}

describe('TopClient against the TOP simulator', () => {
  before(async () => {
    sim = new TopSimulator({ ...CREDS, posids: [POS] });
    await sim.start();
  });
  after(async () => {
    await sim.stop();
  });
  beforeEach(() => {
    sim.calls.length = 0;
  });

  it('send with md5 signing: accepted, wire shape as TOP expects', async () => {
    const orderId = await newOrder(3);
    const r = await client({ signMethod: 'md5' }).send({
      orderId,
      verifyCodes: [
        { code: 'A100200', num: 2 },
        { code: 'B300400', num: 1 },
      ],
      token: TOKEN,
    });
    expectKind(r, 'ok');
    assert.equal(r.body.retCode, 1);
    assert.match(r.body.requestId ?? '', /^sim\d+$/);
    const [call] = sim.callsOf('taobao.vmarket.eticket.send');
    assert.ok(call);
    assert.equal(call.contentType, 'application/x-www-form-urlencoded;charset=utf-8');
    assert.equal(call.params['verify_codes'], 'A100200:2,B300400:1');
    assert.equal(call.params['codemerchant_id'], CREDS.codemerchantId);
    assert.equal(call.params['sign_method'], 'md5');
    assert.equal(call.params['format'], 'json');
    assert.equal(call.params['v'], '2.0');
    assert.equal(call.params['session'], CREDS.session);
    assert.match(call.params['sign'] ?? '', /^[0-9A-F]{32}$/);
    const ts = parseTaobaoTime(call.params['timestamp'] ?? '');
    assert.ok(ts !== undefined && Math.abs(ts - Date.now()) < 5000, 'GMT+8 timestamp close to now');
    assert.deepEqual(sim.order(orderId).codes.map((c) => [c.code, c.num]), [
      ['A100200', 2],
      ['B300400', 1],
    ]);
  });

  it('send with hmac signing: accepted', async () => {
    const orderId = await newOrder(1);
    const r = await client({ signMethod: 'hmac' }).send({ orderId, verifyCodes: [{ code: 'H1', num: 1 }], token: TOKEN });
    expectKind(r, 'ok');
    assert.equal(sim.calls.at(-1)?.params['sign_method'], 'hmac');
  });

  it('a wrong secret gets error 25 Invalid Signature -> terminal, and nothing happens', async () => {
    const orderId = await newOrder(1);
    for (const signMethod of ['md5', 'hmac'] as const) {
      const r = await client({ appSecret: 'wrong', signMethod }).send({ orderId, verifyCodes: [{ code: 'X1', num: 1 }], token: TOKEN });
      expectKind(r, 'terminal');
      assert.equal(r.code, '25');
    }
    assert.equal(sim.order(orderId).sent, false);
  });

  it('a clock 20 minutes off gets 31 Invalid Timestamp; a wrong session 27', async () => {
    const orderId = await newOrder(1);
    const skewed = client({ clock: { now: () => Date.now() - 20 * 60_000 } });
    const r1 = await skewed.codesGet({ orderId });
    expectKind(r1, 'terminal');
    assert.equal(r1.code, '31');
    const r2 = await client({ session: 'expired' }).codesGet({ orderId });
    expectKind(r2, 'terminal');
    assert.equal(r2.code, '27');
  });

  it('sending twice: the second answer code-alreay-send is already_done', async () => {
    const orderId = await newOrder(1, [{ code: 'S1', num: 1 }]);
    const r = await client().send({ orderId, verifyCodes: [{ code: 'S1', num: 1 }], token: TOKEN });
    expectKind(r, 'already_done');
    assert.equal(r.subCode, 'isv.eticket-send-error:code-alreay-send');
  });

  it('resend carries all usable codes; with nothing left it is terminal no-can-resend-code', async () => {
    const orderId = await newOrder(2, [{ code: 'R1', num: 2 }]);
    const r = await client().resend({ orderId, verifyCodes: [{ code: 'R1', num: 2 }], token: TOKEN, qrImages: ['qr_1.png'] });
    expectKind(r, 'ok');
    const call = sim.callsOf('taobao.vmarket.eticket.resend').at(-1);
    assert.equal(call?.params['verify_codes'], 'R1:2');
    assert.equal(call?.params['qr_images'], 'qr_1.png');

    const c = await client().consume({ orderId, verifyCode: 'R1', consumeNum: 2, token: TOKEN, posid: POS, serialNum: 'S_all' });
    expectKind(c, 'ok');
    const again = await client().resend({ orderId, verifyCodes: [{ code: 'R1', num: 2 }], token: TOKEN });
    expectKind(again, 'terminal');
    assert.equal(again.subCode, 'isv.eticket-resend-error:no-can-resend-code');
  });

  it('consume: one code, several people; left counts come back typed', async () => {
    const orderId = await newOrder(3, [{ code: 'C1', num: 3 }]);
    const r = await client().consume({ orderId, verifyCode: 'C1', consumeNum: 2, token: TOKEN, posid: POS, serialNum: 'gate01_0001' });
    expectKind(r, 'ok');
    assert.equal(r.body.leftNum, 1);
    assert.equal(r.body.codeLeftNum, 1);
    assert.equal(r.body.consumeSerialNum, 'gate01_0001');
    const call = sim.callsOf('taobao.vmarket.eticket.consume').at(-1);
    assert.equal(call?.params['serial_num'], 'gate01_0001');
    assert.equal(call?.params['posid'], POS);
    assert.equal(call?.params['consume_num'], '2');
    const over = await client().consume({ orderId, verifyCode: 'C1', consumeNum: 2, token: TOKEN, posid: POS, serialNum: 'gate01_0002' });
    expectKind(over, 'terminal');
    assert.equal(over.subCode, 'isv.eticket-order-consume-num:consume-num-overflow');
    const badPos = await client().consume({ orderId, verifyCode: 'C1', consumeNum: 1, token: TOKEN, posid: 'POS_X', serialNum: 'gate01_0003' });
    expectKind(badPos, 'terminal');
    assert.equal(badPos.subCode, 'isv.eticket-invalid-parameter:invalid-posid');
    const badToken = await client().consume({ orderId, verifyCode: 'C1', consumeNum: 1, token: 'nope', posid: POS, serialNum: 'gate01_0004' });
    expectKind(badToken, 'terminal');
    assert.equal(badToken.subCode, 'isv.eticket-token-error:invalid-token');
    assert.equal(sim.order(orderId).consumedTotal, 2);
  });

  it('consume refuses to send a serial number outside [A-Za-z0-9_]{1,100}', async () => {
    const orderId = await newOrder(1, [{ code: 'V1', num: 1 }]);
    sim.calls.length = 0;
    for (const serialNum of ['has-dash', '', 'x'.repeat(101), '中文']) {
      await assert.rejects(
        client().consume({ orderId, verifyCode: 'V1', consumeNum: 1, token: TOKEN, posid: POS, serialNum }),
        (e: unknown) => e instanceof TopRequestError && e.field === 'serialNum',
      );
    }
    await assert.rejects(client().send({ orderId, verifyCodes: [], token: TOKEN }), TopRequestError);
    await assert.rejects(client().send({ orderId, verifyCodes: [{ code: 'a:b', num: 1 }], token: TOKEN }), TopRequestError);
    await assert.rejects(client().send({ orderId, verifyCodes: [{ code: 'A', num: 0 }], token: TOKEN }), TopRequestError);
    assert.equal(sim.calls.length, 0, 'nothing reached Taobao');
    const ok = await client().consume({ orderId, verifyCode: 'V1', consumeNum: 1, token: TOKEN, posid: POS, serialNum: 'x'.repeat(100) });
    expectKind(ok, 'ok');
  });

  it('reverse: needs the consume serial and the same count; then the units are usable again', async () => {
    const orderId = await newOrder(3, [{ code: 'RV1', num: 3 }]);
    const c = await client().consume({ orderId, verifyCode: 'RV1', consumeNum: 2, token: TOKEN, posid: POS, serialNum: 'rv_1' });
    expectKind(c, 'ok');
    const wrongCount = await client().reverse({ orderId, reverseCode: 'RV1', reverseNum: 1, consumeSerialNum: 'rv_1', token: TOKEN, posid: POS });
    expectKind(wrongCount, 'terminal');
    assert.equal(wrongCount.subCode, 'isv.eticket-order-consume-num:consume-num-invalid');
    const unknown = await client().reverse({ orderId, reverseCode: 'RV1', reverseNum: 2, consumeSerialNum: 'rv_9', token: TOKEN, posid: POS });
    expectKind(unknown, 'terminal');
    assert.equal(unknown.subCode, 'isv.eticket-reverse-error:consume-serial-num-not-found');
    const r = await client().reverse({ orderId, reverseCode: 'RV1', reverseNum: 2, consumeSerialNum: 'rv_1', token: TOKEN, posid: POS });
    expectKind(r, 'ok');
    assert.equal(r.body.leftNum, 3);
    const call = sim.callsOf('taobao.vmarket.eticket.reverse').at(-1);
    assert.equal(call?.params['consume_secial_num'], 'rv_1', "Taobao's own spelling");
    assert.equal(call?.params['reverse_code'], 'RV1');
    assert.equal(sim.order(orderId).consumedTotal, 0);
  });

  it('beforeConsume says whether the code may be consumed', async () => {
    const orderId = await newOrder(1, [{ code: 'B1', num: 1 }]);
    const r = await client().beforeConsume({ orderId, verifyCode: 'B1', token: TOKEN, posid: POS });
    expectKind(r, 'ok');
    assert.equal(r.body.consumable, true);
    assert.equal(r.body.codeLeftNum, 1);
    assert.equal(r.body.validEnd, parseTaobaoTime('2030-12-31 23:59:59'));
    await client().consume({ orderId, verifyCode: 'B1', consumeNum: 1, token: TOKEN, posid: POS, serialNum: 'b_1' });
    const after = await client().beforeConsume({ orderId, verifyCode: 'B1', token: TOKEN, posid: POS });
    expectKind(after, 'ok');
    assert.equal(after.body.consumable, false);
  });

  it('failSend carries the error code and a Chinese message in UTF-8', async () => {
    const orderId = await newOrder(1);
    const r = await client().failSend({ orderId, errorCode: 3001, errorMsg: '景区闭园,无法出票', token: TOKEN });
    expectKind(r, 'ok');
    const call = sim.callsOf('taobao.vmarket.eticket.failsend').at(-1);
    assert.equal(call?.params['error_msg'], '景区闭园,无法出票');
    assert.equal(call?.params['error_code'], '3001');
    assert.equal(sim.order(orderId).failSent, true);
  });

  it('codesGet lists the codes with what is left on them', async () => {
    const orderId = await newOrder(3, [
      { code: 'G1', num: 2 },
      { code: 'G2', num: 1 },
    ]);
    await client().consume({ orderId, verifyCode: 'G1', consumeNum: 1, token: TOKEN, posid: POS, serialNum: 'g_1' });
    const r = await client().codesGet({ orderId });
    expectKind(r, 'ok');
    assert.equal(r.body.totalResults, 2);
    assert.deepEqual(r.body.codes.map((c) => [c.code, c.num]), [
      ['G1', 1],
      ['G2', 1],
    ]);
  });

  it('qrcodeUpload posts multipart with code_merchant_id; the image is not signed', async () => {
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(1000, 7)]);
    const r = await client({ signMethod: 'hmac' }).qrcodeUpload(png, 'order.png');
    expectKind(r, 'ok');
    assert.match(r.body.imgFilename, /^qr_\d+\.png$/);
    const call = sim.callsOf('taobao.vmarket.eticket.qrcode.upload').at(-1);
    assert.match(call?.contentType ?? '', /^multipart\/form-data; boundary=/);
    assert.equal(call?.files['img_bytes'], png.length);
    assert.equal(call?.params['code_merchant_id'], CREDS.codemerchantId);
    await assert.rejects(client().qrcodeUpload(Buffer.alloc(300 * 1024)), TopRequestError);
  });

  it('switches: failures map through the classification table', async () => {
    const orderId = await newOrder(1);
    const table: Array<[string, number, string, boolean]> = [
      ['isv.eticket-service-unavailable:op-failed', 15, 'retryable', false],
      ['isv.eticket-service-unavailable:order-is-processing', 15, 'retryable', false],
      ['isp.top-remote-connection-timeout', 15, 'retryable', false],
      ['isv.eticket-order-status-error:invalid-order-status', 15, 'terminal', false],
      ['isv.something-new:never-documented', 15, 'terminal', false],
    ];
    for (const [subCode, code, kind] of table) {
      sim.failNext('taobao.vmarket.eticket.send', 1, subCode, code);
      const r = await client().send({ orderId, verifyCodes: [{ code: 'F1', num: 1 }], token: TOKEN });
      assert.equal(r.kind, kind, subCode);
      assert.ok(r.kind !== 'ok' && r.kind !== 'already_done' && r.subCode === subCode);
      if (r.kind === 'retryable') assert.equal(r.ambiguous, false);
    }
    assert.equal(sim.order(orderId).sent, false, 'failed calls had no effect');
    // The switch is used up: the next call goes through.
    expectKind(await client().send({ orderId, verifyCodes: [{ code: 'F1', num: 1 }], token: TOKEN }), 'ok');
  });

  it('HTTP 500 is retryable and ambiguous', async () => {
    const orderId = await newOrder(1);
    sim.http500Next('taobao.vmarket.eticket.send', 1);
    const r = await client().send({ orderId, verifyCodes: [{ code: 'E1', num: 1 }], token: TOKEN });
    expectKind(r, 'retryable');
    assert.equal(r.code, 'HTTP_500');
    assert.equal(r.ambiguous, true);
  });

  it('a hung call times out within the configured timeout: retryable + ambiguous', async () => {
    const orderId = await newOrder(1);
    sim.hangNext('taobao.vmarket.eticket.send', 1);
    const started = Date.now();
    const r = await client({ timeoutMs: 300 }).send({ orderId, verifyCodes: [{ code: 'T1', num: 1 }], token: TOKEN });
    const elapsed = Date.now() - started;
    expectKind(r, 'retryable');
    assert.equal(r.code, 'TIMEOUT');
    assert.equal(r.ambiguous, true);
    assert.ok(elapsed >= 250 && elapsed < 1500, `took ${elapsed} ms`);
  });

  it('consume whose answer is lost: the retry with the same serial is already_done and counts once', async () => {
    const orderId = await newOrder(3, [{ code: 'L1', num: 3 }]);
    sim.hangNext('taobao.vmarket.eticket.consume', 1, { applyEffect: true });
    const req = { orderId, verifyCode: 'L1', consumeNum: 2, token: TOKEN, posid: POS, serialNum: 'gate01_lost_1' };
    const first = await client({ timeoutMs: 300 }).consume(req);
    expectKind(first, 'retryable');
    assert.equal(first.ambiguous, true);
    assert.equal(sim.order(orderId).consumedTotal, 2, 'Taobao did apply it');

    const retry = await client().consume(req);
    expectKind(retry, 'already_done');
    assert.equal(retry.subCode, 'isv.eticket-invalid-parameter:duplicate-consume-serial-num');
    const snap = sim.order(orderId);
    assert.equal(snap.consumedTotal, 2, 'no double count');
    assert.equal(snap.serials.length, 1);
    assert.equal(sim.callsOf('taobao.vmarket.eticket.consume').length, 2);
  });

  it('a closed order answers invalid-order-status -> terminal', async () => {
    const orderId = await newOrder(1, [{ code: 'K1', num: 1 }]);
    sim.closeOrder(orderId);
    const r = await client().consume({ orderId, verifyCode: 'K1', consumeNum: 1, token: TOKEN, posid: POS, serialNum: 'k_1' });
    expectKind(r, 'terminal');
    assert.equal(r.subCode, 'isv.eticket-order-status-error:invalid-order-status');
  });
});

describe('TopClient transport failures', () => {
  it('connection refused is retryable and not ambiguous (nothing was sent)', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const c = new TopClient({ routerUrl: `http://127.0.0.1:${port}/router/rest`, ...CREDS, timeoutMs: 1000 });
    const r = await c.codesGet({ orderId: '42' });
    expectKind(r, 'retryable');
    assert.equal(r.code, 'NETWORK');
    assert.equal(r.ambiguous, false);
  });
});
