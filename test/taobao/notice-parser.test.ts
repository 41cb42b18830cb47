import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import iconv from 'iconv-lite';
import {
  dedupKey,
  NOTICE_ACK,
  parseNoticeBody,
  validateNotice,
  type NoticeRejection,
  type TaobaoNotice,
} from '../../src/taobao/notice-parser';
import { parseTaobaoTime } from '../../src/taobao/taobao-time';
import { buildNotice, SAMPLE_NOTICE_KEY, SAMPLE_SEND_PARAMS, SAMPLE_SEND_SIGN } from '../support/taobao-notices';

const KEY = 'test-notice-key-0123456789abcdef';
const NOW = parseTaobaoTime('2024-05-01 10:00:00')!;
const MOBILE = '13912345678';

/** Wire round trip: build the body, parse it back, validate it. */
function receive(method: string, fields: Record<string, string>, opts: { now?: number; key?: string } = {}) {
  const built = buildNotice(method, fields, opts.key ?? KEY, { now: NOW });
  const parsed = parseNoticeBody(built.body, built.contentType);
  assert.ok(parsed.ok, 'body parses');
  return { params: parsed.params, result: validateNotice(parsed.params, { noticeKey: KEY, now: opts.now ?? NOW }) };
}

function accepted(method: string, fields: Record<string, string>): { notice: TaobaoNotice; params: Record<string, string> } {
  const { params, result } = receive(method, fields);
  if (!result.ok) assert.fail(`rejected: ${result.reason} ${result.message}`);
  return { notice: result.notice, params };
}

function rejected(method: string, fields: Record<string, string>, opts: { now?: number; key?: string } = {}): NoticeRejection {
  const { result } = receive(method, fields, opts);
  if (result.ok) assert.fail('expected a rejection');
  return result;
}

const SEND = {
  order_id: '3001002003004005',
  num: '3',
  token: 'abcdef0123456789abcdef0123456789',
  mobile: MOBILE,
  type: '0',
  num_iid: '522071639483',
  outer_iid: 'ZYB-PARK',
  sub_outer_iid: 'PST20240501',
  item_title: '银子岩门票',
  sku_properties: '门票种类:成人票;门票类型:电子票',
  taobao_sid: '92333234',
  seller_nick: '桂林旅游旗舰店',
  send_type: '2',
  consume_type: '2',
  sms_template: '验证码$code,请凭码入园',
  valid_start: '2024-05-01 00:00:00',
  valid_ends: '2024-05-31 23:59:59',
  total_fee: '12.30',
  weeks: '[1,2,3,4,5,6,7]',
  id_card: 'E10ADC3949BA59ABBE56E057F20F883E',
};

describe('parseNoticeBody', () => {
  it('round-trips GBK percent-encoded Chinese values and verifies their signature', () => {
    const built = buildNotice('send', SEND, KEY, { now: NOW });
    assert.match(built.body.toString('ascii'), /item_title=%D2%F8%D7%D3%D1%D2/, 'GBK bytes of 银子岩 on the wire');
    const parsed = parseNoticeBody(built.body, built.contentType);
    assert.ok(parsed.ok);
    assert.equal(parsed.charset, 'gbk');
    assert.equal(parsed.params['item_title'], '银子岩门票');
    assert.equal(parsed.params['sku_properties'], '门票种类:成人票;门票类型:电子票');
    assert.equal(parsed.params['seller_nick'], '桂林旅游旗舰店');
    assert.deepEqual({ ...parsed.params }, built.params);
  });

  it('parses the §1.2 real notice sent as GBK and its sign verifies', () => {
    const body = Buffer.from(
      Object.entries({ ...SAMPLE_SEND_PARAMS, sign: SAMPLE_SEND_SIGN })
        .map(([k, v]) => `${k}=${[...iconv.encode(v, 'gbk')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('')}`)
        .join('&'),
    );
    const parsed = parseNoticeBody(body, 'application/x-www-form-urlencoded; charset=GBK');
    assert.ok(parsed.ok);
    const result = validateNotice(parsed.params, {
      noticeKey: SAMPLE_NOTICE_KEY,
      now: parseTaobaoTime('2016-04-12 04:05:00')!,
    });
    assert.ok(result.ok, 'accepted');
    assert.equal(result.notice.method, 'send');
    if (result.notice.method !== 'send') return;
    assert.equal(result.notice.itemTitle, '银子岩门票');
    assert.equal(result.notice.orderId, '1525658026040792');
    assert.deepEqual(result.notice.weeks, [1, 2, 3, 4, 5, 6, 7]);
  });

  it('decodes UTF-8 when the content type says charset=utf-8 (and the GBK signature still holds)', () => {
    const built = buildNotice('send', SEND, KEY, { now: NOW, charset: 'utf-8' });
    assert.match(built.body.toString('ascii'), /item_title=%E9%93%B6/, 'UTF-8 bytes of 银');
    const parsed = parseNoticeBody(built.body, built.contentType);
    assert.ok(parsed.ok);
    assert.equal(parsed.charset, 'utf-8');
    assert.equal(parsed.params['item_title'], '银子岩门票');
    assert.ok(validateNotice(parsed.params, { noticeKey: KEY, now: NOW }).ok);
    // The same UTF-8 bytes read as GBK are not the same text.
    const misread = parseNoticeBody(built.body, 'application/x-www-form-urlencoded');
    assert.ok(!misread.ok || misread.params['item_title'] !== '银子岩门票');
  });

  it("turns '+' into a space and keeps an encoded '+' and '&'", () => {
    const parsed = parseNoticeBody(Buffer.from('a=x+y&b=1%2B1%262'), undefined);
    assert.ok(parsed.ok);
    assert.equal(parsed.params['a'], 'x y');
    assert.equal(parsed.params['b'], '1+1&2');
  });

  const malformedBodies: Array<[string, Buffer, string | undefined, number]> = [
    ['a broken percent escape', Buffer.from('order_id=1&mobile=%G1'), undefined, 400],
    ['a truncated percent escape', Buffer.from('order_id=1%2'), undefined, 400],
    ['bytes that are not GBK', Buffer.from('item_title=%FF%FF'), undefined, 400],
    ['bytes that are not UTF-8', Buffer.from('item_title=%D2%F8'), 'application/x-www-form-urlencoded;charset=utf-8', 400],
    ['a repeated parameter', Buffer.from('num=1&num=2'), undefined, 400],
    ['a bad parameter name', Buffer.from('bad%20name=1'), undefined, 400],
    ['an unknown charset', Buffer.from('a=1'), 'application/x-www-form-urlencoded; charset=latin-9', 415],
    ['a JSON content type', Buffer.from('{"a":1}'), 'application/json', 415],
  ];
  for (const [what, body, ct, status] of malformedBodies) {
    it(`rejects ${what} as MALFORMED_BODY`, () => {
      const parsed = parseNoticeBody(body, ct);
      assert.equal(parsed.ok, false);
      if (parsed.ok) return;
      assert.equal(parsed.reason, 'MALFORMED_BODY');
      assert.equal(parsed.httpStatus, status);
      assert.equal(JSON.parse(parsed.body).reason, 'MALFORMED_BODY');
    });
  }

  it('does not let a __proto__ parameter reach the prototype', () => {
    const parsed = parseNoticeBody(Buffer.from('__proto__=x&a=1'), undefined);
    assert.ok(parsed.ok);
    assert.equal(Object.getPrototypeOf(parsed.params), null);
    assert.equal(parsed.params['__proto__'], 'x');
  });
});

describe('validateNotice: each method', () => {
  it('send: every field typed, Chinese intact, money in fen, times GMT+8', () => {
    const { notice } = accepted('send', SEND);
    assert.equal(notice.method, 'send');
    if (notice.method !== 'send') return;
    assert.equal(notice.orderId, '3001002003004005');
    assert.equal(notice.num, 3);
    assert.equal(notice.token, SEND.token);
    assert.equal(notice.noticeType, 0);
    assert.equal(notice.mobile, MOBILE);
    assert.equal(notice.numIid, '522071639483');
    assert.equal(notice.outerIid, 'ZYB-PARK');
    assert.equal(notice.subOuterIid, 'PST20240501');
    assert.equal(notice.itemTitle, '银子岩门票');
    assert.equal(notice.skuProperties, SEND.sku_properties);
    assert.equal(notice.sellerId, '92333234');
    assert.equal(notice.sellerNick, '桂林旅游旗舰店');
    assert.equal(notice.sendType, 2);
    assert.equal(notice.consumeType, 2);
    assert.equal(notice.smsTemplate, '验证码$code,请凭码入园');
    assert.equal(notice.validStart, Date.UTC(2024, 3, 30, 16, 0, 0), '00:00 GMT+8 is 16:00 UTC the day before');
    assert.equal(notice.validEnd, Date.UTC(2024, 4, 31, 15, 59, 59));
    assert.equal(notice.totalFeeFen, 1230);
    assert.equal(notice.idCardMd5, 'e10adc3949ba59abbe56e057f20f883e');
    assert.deepEqual(notice.weeks, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(notice.timestamp, NOW);
  });

  it('send: defaults send_type 2 and consume_type 0; optional fields absent', () => {
    const { notice } = accepted('send', { order_id: '42', num: '1', token: 't0k', mobile: MOBILE });
    assert.equal(notice.method, 'send');
    if (notice.method !== 'send') return;
    assert.equal(notice.sendType, 2);
    assert.equal(notice.consumeType, 0);
    assert.equal(notice.noticeType, 0);
    assert.equal(notice.totalFeeFen, undefined);
    assert.equal(notice.validStart, undefined);
    assert.equal(notice.weeks, undefined);
  });

  it('send type=1: no clear mobile, masked mobile and its md5 instead', () => {
    const fields: Record<string, string> = { ...SEND, type: '1', encrypt_mobile: '139****5678', md5_mobile: 'AB'.repeat(16) };
    delete fields['mobile'];
    const { notice } = accepted('send', fields);
    assert.equal(notice.method, 'send');
    if (notice.method !== 'send') return;
    assert.equal(notice.noticeType, 1);
    assert.equal(notice.mobile, undefined);
    assert.equal(notice.encryptMobile, '139****5678');
    assert.equal(notice.md5Mobile, 'ab'.repeat(16));
  });

  it('send: total_fee yuan to fen without float error', () => {
    const cases: Array<[string, number]> = [
      ['12.30', 1230],
      ['12.3', 1230],
      ['0.07', 7],
      ['19.99', 1999],
      ['1.00', 100],
      ['100', 10000],
      ['4.35', 435],
    ];
    for (const [yuan, fen] of cases) {
      const { notice } = accepted('send', { ...SEND, total_fee: yuan });
      assert.equal(notice.method === 'send' && notice.totalFeeFen, fen, yuan);
    }
  });

  it('resend: left_num and optional mobile', () => {
    const { notice } = accepted('resend', { order_id: '42', token: 't0k', left_num: '2', mobile: MOBILE });
    assert.deepEqual(
      { method: notice.method, ...(notice.method === 'resend' ? { l: notice.leftNum, m: notice.mobile } : {}) },
      { method: 'resend', l: 2, m: MOBILE },
    );
    const bare = accepted('resend', { order_id: '42', token: 't0k', left_num: '0' }).notice;
    assert.equal(bare.method === 'resend' && bare.mobile, undefined);
  });

  it('modified: the new mobile is required', () => {
    const { notice } = accepted('modified', { order_id: '42', token: 't0k', left_num: '1', mobile: '13800000000' });
    assert.equal(notice.method, 'modified');
    assert.equal(notice.method === 'modified' && notice.mobile, '13800000000');
    assert.equal(notice.method === 'modified' && notice.leftNum, 1);
    const r = rejected('modified', { order_id: '42', token: 't0k', left_num: '1' });
    assert.equal(r.reason, 'MISSING_FIELD');
    assert.equal(r.field, 'mobile');
  });

  it('cancel: cancel_num is a positive count', () => {
    const { notice } = accepted('cancel', { order_id: '42', token: 't0k', cancel_num: '2' });
    assert.equal(notice.method === 'cancel' && notice.cancelNum, 2);
    assert.equal(rejected('cancel', { order_id: '42', token: 't0k', cancel_num: '0' }).reason, 'INVALID_FIELD');
  });

  it('order_modify sub_method 1: validity parsed from data JSON', () => {
    const data = JSON.stringify({ valid_start: '2024-05-01 00:00:00', valid_ends: '2024-06-30 23:59:59' });
    const { notice } = accepted('order_modify', { order_id: '42', token: 't0k', sub_method: '1', data });
    assert.equal(notice.method, 'order_modify');
    if (notice.method !== 'order_modify' || notice.subMethod !== 1) return assert.fail('sub_method 1 expected');
    assert.deepEqual(notice.validity, {
      start: parseTaobaoTime('2024-05-01 00:00:00'),
      end: parseTaobaoTime('2024-06-30 23:59:59'),
    });
  });

  it('order_modify sub_method 2: rights protection', () => {
    const { notice } = accepted('order_modify', { order_id: '42', token: 't0k', sub_method: '2' });
    assert.equal(notice.method === 'order_modify' && notice.subMethod, 2);
  });
});

describe('validateNotice: rejections', () => {
  it('BAD_SIGN: a wrong key answers HTTP 200 {"code":501}', () => {
    const built = buildNotice('send', SEND, 'someone-elses-key', { now: NOW });
    const parsed = parseNoticeBody(built.body, built.contentType);
    assert.ok(parsed.ok);
    const r = validateNotice(parsed.params, { noticeKey: KEY, now: NOW });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.reason, 'BAD_SIGN');
    assert.equal(r.httpStatus, 200);
    assert.equal(r.body, NOTICE_ACK.badSign);
    assert.deepEqual(JSON.parse(r.body), { code: 501 });
  });

  it('BAD_SIGN: an unsigned notice, and a tampered value', () => {
    const unsigned = buildNotice('cancel', { order_id: '42', token: 't', cancel_num: '1' }, KEY, { now: NOW, sign: null });
    const p1 = parseNoticeBody(unsigned.body, unsigned.contentType);
    assert.ok(p1.ok);
    const r1 = validateNotice(p1.params, { noticeKey: KEY, now: NOW });
    assert.equal(!r1.ok && r1.reason, 'BAD_SIGN');

    const good = buildNotice('cancel', { order_id: '42', token: 't', cancel_num: '1' }, KEY, { now: NOW });
    const p2 = parseNoticeBody(good.body, good.contentType);
    assert.ok(p2.ok);
    const r2 = validateNotice({ ...p2.params, cancel_num: '5' }, { noticeKey: KEY, now: NOW });
    assert.equal(!r2.ok && r2.reason, 'BAD_SIGN');
  });

  it('accepts the previous key while keys rotate', () => {
    const built = buildNotice('cancel', { order_id: '42', token: 't', cancel_num: '1' }, 'old-key', { now: NOW });
    const parsed = parseNoticeBody(built.body, built.contentType);
    assert.ok(parsed.ok);
    assert.ok(validateNotice(parsed.params, { noticeKey: ['new-key', 'old-key'], now: NOW }).ok);
  });

  it('UNKNOWN_METHOD: a signed notice with a method we do not know', () => {
    const r = rejected('heartBeatCheck', {});
    assert.equal(r.reason, 'UNKNOWN_METHOD');
    assert.equal(r.httpStatus, 400);
    assert.match(r.message, /heartBeatCheck/);
  });

  it('MALFORMED_TIMESTAMP: not yyyy-MM-dd HH:mm:ss, or an impossible date', () => {
    for (const ts of ['2024/05/01 10:00:00', '1714528800000', '2024-02-30 10:00:00', '2024-05-01 24:00:00']) {
      const r = rejected('cancel', { order_id: '42', token: 't', cancel_num: '1', timestamp: ts });
      assert.equal(r.reason, 'MALFORMED_TIMESTAMP', ts);
      assert.equal(r.httpStatus, 400);
    }
  });

  it('STALE_TIMESTAMP: too old or too far ahead; a retry a few hours old is still accepted', () => {
    const fields = { order_id: '42', token: 't', cancel_num: '1' };
    const hour = 3600_000;
    assert.ok(receive('cancel', fields, { now: NOW + 5 * hour }).result.ok, 'Taobao retrying after 5 h');
    assert.equal(rejected('cancel', fields, { now: NOW + 25 * hour }).reason, 'STALE_TIMESTAMP');
    assert.equal(rejected('cancel', fields, { now: NOW - 11 * 60_000 }).reason, 'STALE_TIMESTAMP');
    assert.ok(receive('cancel', fields, { now: NOW - 9 * 60_000 }).result.ok, 'within the 10 min skew');
    // configurable
    const parsed = receive('cancel', fields).params;
    const r = validateNotice(parsed, { noticeKey: KEY, now: NOW + 2 * hour, maxAgeMs: hour });
    assert.equal(!r.ok && r.reason, 'STALE_TIMESTAMP');
  });

  it('MISSING_FIELD names the field and never echoes a mobile', () => {
    for (const field of ['order_id', 'num', 'token', 'mobile']) {
      const fields: Record<string, string> = { ...SEND };
      delete fields[field];
      const r = rejected('send', fields);
      assert.equal(r.reason, 'MISSING_FIELD', field);
      assert.equal(r.field, field);
      assert.equal(r.httpStatus, 400);
      assert.equal(JSON.parse(r.body).field, field);
      assert.ok(!r.body.includes(MOBILE) && !r.message.includes(MOBILE));
    }
    const t1: Record<string, string> = { ...SEND, type: '1', encrypt_mobile: '139****5678' };
    delete t1['mobile'];
    assert.equal(rejected('send', t1).field, 'md5_mobile');
    assert.equal(rejected('send', { ...SEND, valid_ends: '' }).field, 'valid_ends');
  });

  it('INVALID_FIELD for every malformed number or value, without echoing it', () => {
    const cases: Array<[string, string]> = [
      ['num', '0'],
      ['num', '-1'],
      ['num', '1.5'],
      ['num', 'abc'],
      ['order_id', '12a'],
      ['total_fee', '12.345'],
      ['total_fee', '-1.00'],
      ['total_fee', '1e3'],
      ['send_type', '3'],
      ['consume_type', 'x'],
      ['type', '7'],
      ['mobile', '139-1234-5678'],
      ['valid_start', '2024-05-01'],
      ['weeks', '[0,1]'],
      ['weeks', 'every day'],
      ['id_card', '110101199003077777'],
    ];
    for (const [field, value] of cases) {
      const r = rejected('send', { ...SEND, [field]: value });
      assert.equal(r.reason, 'INVALID_FIELD', `${field}=${value}`);
      assert.equal(r.field, field);
      assert.ok(!r.body.includes(value) || value.length < 2, `body must not echo ${value}`);
    }
    assert.equal(rejected('send', { ...SEND, valid_start: '2024-06-01 00:00:00' }).reason, 'INVALID_FIELD');
    assert.equal(rejected('resend', { order_id: '42', token: 't', left_num: '-1' }).reason, 'INVALID_FIELD');
    assert.equal(rejected('order_modify', { order_id: '42', token: 't', sub_method: '3' }).field, 'sub_method');
    assert.equal(
      rejected('order_modify', { order_id: '42', sub_method: '1', data: '{"valid_start":"2024-05-01 00:00:00"}' }).field,
      'data',
    );
    assert.equal(rejected('order_modify', { order_id: '42', sub_method: '1', data: 'not json' }).field, 'data');
  });
});

describe('dedupKey', () => {
  function keyOf(method: string, fields: Record<string, string>, now: number): string {
    const built = buildNotice(method, fields, KEY, { now });
    const parsed = parseNoticeBody(built.body, built.contentType);
    assert.ok(parsed.ok);
    const r = validateNotice(parsed.params, { noticeKey: KEY, now });
    if (!r.ok) assert.fail(r.message);
    return dedupKey(r.notice, parsed.params);
  }

  it('a repeat of the same send (even re-stamped and re-signed) has the same key', () => {
    const a = keyOf('send', SEND, NOW);
    const b = keyOf('send', SEND, NOW + 3 * 60_000);
    assert.equal(a, b);
    assert.match(a, /^send:3001002003004005:[0-9a-f]{32}$/);
    assert.ok(!a.includes(MOBILE));
    assert.notEqual(keyOf('send', { ...SEND, num: '4' }, NOW), a, 'different content, different key');
  });

  it('resend: repeats within the day merge, a second real resend on another day does not', () => {
    const fields = { order_id: '42', token: 't', left_num: '2', mobile: MOBILE };
    const morning = parseTaobaoTime('2024-05-01 08:00:00')!;
    assert.equal(keyOf('resend', fields, morning), keyOf('resend', fields, morning + 3 * 3600_000));
    assert.notEqual(keyOf('resend', fields, morning), keyOf('resend', fields, morning + 24 * 3600_000));
  });

  it('modified: changing the mobile back to an earlier number is a new event', () => {
    const a = { order_id: '42', token: 't', left_num: '2', mobile: '13800000001' };
    const b = { ...a, mobile: '13800000002' };
    const first = keyOf('modified', a, NOW);
    assert.notEqual(first, keyOf('modified', b, NOW + 60_000));
    assert.notEqual(first, keyOf('modified', a, NOW + 120_000));
    assert.equal(first, keyOf('modified', a, NOW), 'an identical repeat merges');
  });

  it('cancel: the same refund merges; a different count is a different refund', () => {
    const c = { order_id: '42', token: 't', cancel_num: '1' };
    assert.equal(keyOf('cancel', c, NOW), keyOf('cancel', c, NOW + 60_000));
    assert.notEqual(keyOf('cancel', c, NOW), keyOf('cancel', { ...c, cancel_num: '2' }, NOW));
    assert.ok(keyOf('order_modify', { order_id: '42', sub_method: '2' }, NOW).length <= 100);
  });
});
