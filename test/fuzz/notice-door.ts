/**
 * Hostile input at POST /taobao/notices, as properties over a running Gateway (run on SQLite and on MariaDB).
 * Every generated notice is invalid by construction, so the oracle is the same for each: a clear refusal
 * (the status and body the README promises for that defect), no row changed anywhere, the gateway still up.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatTaobaoTime } from '../../src/taobao/taobao-time';
import { encodeForm } from '../support/taobao-notices';
import { newTaobaoOrderId, sendFields } from '../taobao/flows/flow-harness';
import { FUZZ_NOTICE_KEY, ITEM, assertUnchanged, fuzzParams, idCardArb, labelled, mobileArb, personalArb, type FuzzGateway } from './fuzz-gateway';
import { signNotice } from '../../src/taobao/notice-signature';

const HOUR = 3_600_000;

interface Answer {
  status: number;
  text: string;
}

/** The answer the README promises for each kind of defect. */
type Expect =
  | { kind: 'bad_sign' }
  | { kind: 'invalid'; reason: string; field?: string }
  | { kind: 'malformed'; status: number }
  | { kind: 'http'; status: number }
  | { kind: 'duplicate' }
  /** Random bytes: any 4xx with a JSON body, or the bad-sign answer; never an acknowledgement, never a 5xx. */
  | { kind: 'refused' };

function check(answer: Answer, expect: Expect, what: string): void {
  const ctx = `${what}: got ${answer.status} ${answer.text.slice(0, 200)}`;
  switch (expect.kind) {
    case 'bad_sign':
      assert.equal(answer.status, 200, ctx);
      assert.equal(answer.text, '{"code":501}', ctx);
      return;
    case 'invalid': {
      assert.equal(answer.status, 400, ctx);
      const body = JSON.parse(answer.text) as { code: number; reason: string; field?: string };
      assert.equal(body.code, 400, ctx);
      assert.equal(body.reason, expect.reason, ctx);
      if (expect.field !== undefined) assert.equal(body.field, expect.field, ctx);
      return;
    }
    case 'malformed': {
      assert.equal(answer.status, expect.status, ctx);
      const body = JSON.parse(answer.text) as { code?: number; error?: string };
      assert.ok(body.code === expect.status || typeof body.error === 'string', ctx);
      return;
    }
    case 'http':
      assert.equal(answer.status, expect.status, ctx);
      assert.doesNotThrow(() => JSON.parse(answer.text), ctx);
      return;
    case 'duplicate':
      assert.equal(answer.status, 200, ctx);
      assert.equal(answer.text, '{"code":200}', ctx);
      return;
    case 'refused':
      assert.ok((answer.status >= 400 && answer.status < 500) || (answer.status === 200 && answer.text === '{"code":501}'), ctx);
      assert.doesNotThrow(() => JSON.parse(answer.text), ctx);
  }
}

/** One hostile request: its bytes and what the gateway must answer. */
interface Case {
  readonly label: string;
  readonly body: Buffer;
  readonly contentType?: string;
  readonly method?: string;
  readonly expect: Expect;
}

/** A fresh, otherwise valid `send` notice's fields, with personal data where it belongs and where it does not. */
function freshSendArb(fz: FuzzGateway) {
  return fc.record({ mobile: mobileArb, stray: personalArb(fz) }).map(({ mobile, stray }) => {
    fz.personalData.add(mobile);
    return sendFields(newTaobaoOrderId(), { outer_iid: ITEM.outerIid, sub_outer_iid: ITEM.subOuterIid, mobile, item_title: `门票 ${stray} 成人` });
  });
}

const signed = (method: string, params: Record<string, string>, now = Date.now()): Record<string, string> => {
  const p: Record<string, string> = { timestamp: formatTaobaoTime(now), ...params, method };
  delete p['sign'];
  p['sign'] = signNotice(p, FUZZ_NOTICE_KEY);
  return p;
};

const pct = (b: number) => '%' + b.toString(16).toUpperCase().padStart(2, '0');

/** Bytes GBK has no character for: a lead byte followed by a byte no GBK trail takes, or a lone lead at the end. */
const badGbkArb = fc.oneof(
  fc.tuple(fc.integer({ min: 0x81, max: 0xfe }), fc.oneof(fc.integer({ min: 0x00, max: 0x2f }), fc.constant(0x7f), fc.constant(0xff))).map(([a, b]) => pct(a) + pct(b)),
  fc.integer({ min: 0x81, max: 0xfe }).map((a) => pct(a)),
  fc.constant('%FF'),
);

const REQUIRED_SEND_FIELDS = ['order_id', 'token', 'num', 'mobile'] as const;
const STRAY_PARAM = fc.stringMatching(/^x_[a-z0-9_]{1,20}$/);

/** Values each field refuses, by the parser's own rules. */
const OUT_OF_RANGE: Record<string, fc.Arbitrary<string>> = {
  num: fc.oneof(fc.constant('0'), fc.integer({ min: -1e9, max: -1 }).map(String), fc.constantFrom('1.5', '1e3', '0x10', ' 1', '１', 'NaN', 'Infinity'), fc.bigInt({ min: 10n ** 9n, max: 10n ** 30n }).map(String)),
  total_fee: fc.oneof(fc.integer({ min: -1e9, max: -1 }).map((n) => `${n}.00`), fc.constantFrom('1.001', '1e5', '.5', '01.00', '-0', 'abc'), fc.bigInt({ min: 10n ** 12n, max: 10n ** 25n }).map(String)),
  type: fc.oneof(fc.integer({ min: 3, max: 1e6 }).map(String), fc.integer({ min: -1e6, max: -1 }).map(String), fc.constantFrom('a', '1.0')),
  send_type: fc.oneof(fc.integer({ min: 3, max: 1e6 }).map(String), fc.constantFrom('-1', '2.0', 'x')),
  consume_type: fc.oneof(fc.integer({ min: 3, max: 1e6 }).map(String), fc.constantFrom('-1', 'one')),
  order_id: fc.oneof(fc.constantFrom('0', '-1', '01525658026040792', '1.5', 'abc'), fc.bigInt({ min: 10n ** 20n, max: 10n ** 40n }).map(String)),
  valid_start: fc.constantFrom('2026-02-30 00:00:00', '2026-13-01 00:00:00', '2026-01-01T00:00:00', '1700000000000', '2026-01-01 24:00:00'),
  weeks: fc.oneof(fc.constantFrom('[0]', '[8]', '[1,1]', '[]', '[1,2,3,4,5,6,7,1]', '1,2,3', '{"a":1}', '[1.5]', 'null', '[', '"[1]"'), fc.string({ maxLength: 20 }).filter((s) => !/^\s*\[\s*[1-7](\s*,\s*[1-7])*\s*\]\s*$/.test(s) && s !== '')),
  id_card: fc.oneof(fc.constantFrom('not-an-md5', '0'.repeat(31), 'g'.repeat(32)), idCardArb),
  mobile: fc.oneof(fc.constantFrom('12345', '+', 'abc', '138-1234-5678'), fc.stringMatching(/^[0-9]{21,40}$/)),
};

/** Field lengths the order row holds (varchar sizes in OrderEntity): a signed notice beyond them is refused, not truncated. */
const FIELD_LIMITS: Record<string, number> = { token: 64, item_title: 255, sku_properties: 500, seller_nick: 64, outer_iid: 64, sub_outer_iid: 64 };

export function noticeCaseArb(fz: FuzzGateway): fc.Arbitrary<Case> {
  const fresh = freshSendArb(fz);
  const cases: Array<fc.Arbitrary<Case>> = [
    // Random bytes with any content type: never a notice (nothing random carries a valid sign).
    fc.tuple(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(undefined, 'application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8')).map(([bytes, ct]) => ({
      label: 'random bytes',
      body: Buffer.from(bytes),
      contentType: ct,
      expect: { kind: 'refused' } as Expect,
    })),
    // Bad GBK inside a correctly signed notice.
    fc.tuple(fresh, badGbkArb, fc.constantFrom('item_title', 'seller_nick', 'sku_properties', 'sms_template')).map(([fields, bad, field]) => {
      const p = signed('send', fields);
      const text = encodeForm(p, 'gbk').toString('ascii').replace(`${field}=`, `${field}=${bad}`);
      return { label: `bad GBK in ${field}`, body: Buffer.from(text, 'ascii'), expect: { kind: 'malformed', status: 400 } as Expect };
    }),
    // Broken percent escapes.
    fc.tuple(fresh, fc.constantFrom('%', '%G1', '%4', '%%41', '%zz')).map(([fields, bad]) => {
      const text = encodeForm(signed('send', fields), 'gbk').toString('ascii').replace('item_title=', `item_title=${bad}`);
      return { label: 'broken percent escape', body: Buffer.from(text, 'ascii'), expect: { kind: 'malformed', status: 400 } as Expect };
    }),
    // Bad parameter names (the body has to be form fields, not anything else).
    fc.tuple(fresh, fc.constantFrom('a b', 'x-y', '%00', '', 'k'.repeat(65), '__proto__[x]', '%E9%97%A8')).map(([fields, name]) => {
      const text = `${encodeForm(signed('send', fields), 'gbk').toString('ascii')}&${name}=1`;
      return { label: `bad parameter name`, body: Buffer.from(text, 'ascii'), expect: { kind: 'malformed', status: 400 } as Expect };
    }),
    // A whole body beyond the notice limit (256 KiB) or beyond the HTTP limit (1 MiB).
    fc.tuple(fresh, fc.constantFrom(300 * 1024, 1100 * 1024)).map(([fields, size]) => {
      const p = signed('send', { ...fields, sms_template: 'x'.repeat(size) });
      return { label: `body of ${size} bytes`, body: encodeForm(p, 'gbk'), expect: { kind: 'malformed', status: 413 } as Expect };
    }),
    // A signed field longer than what the order row can hold.
    fc.tuple(fresh, fc.constantFrom(...Object.keys(FIELD_LIMITS)), fc.integer({ min: 1, max: 3000 })).map(([fields, field, extra]) => {
      const limit = FIELD_LIMITS[field]!;
      const ascii = field === 'token' || field.endsWith('iid');
      const value = (ascii ? 'T' : '门').repeat(limit + extra);
      return { label: `${field} of ${limit + extra} characters`, body: encodeForm(signed('send', { ...fields, [field]: value }), 'gbk'), expect: { kind: 'invalid', reason: 'INVALID_FIELD', field } as Expect };
    }),
    // A required field missing, the rest signed correctly.
    fc.tuple(fresh, fc.constantFrom(...REQUIRED_SEND_FIELDS), fc.boolean()).map(([fields, field, empty]) => {
      const f = { ...fields };
      if (empty) f[field] = '';
      else delete f[field];
      return { label: `send without ${field}`, body: encodeForm(signed('send', f), 'gbk'), expect: { kind: 'invalid', reason: 'MISSING_FIELD', field } as Expect };
    }),
    // method / timestamp missing (unsigned notices say nothing else: signature is checked first, so sign them).
    fc.tuple(fresh, fc.constantFrom('method', 'timestamp')).map(([fields, field]) => {
      const p: Record<string, string> = { timestamp: formatTaobaoTime(Date.now()), ...fields, method: 'send' };
      delete p[field];
      p['sign'] = signNotice(p, fz.noticeKey);
      return { label: `notice without ${field}`, body: encodeForm(p, 'gbk'), expect: { kind: 'invalid', reason: 'MISSING_FIELD', field } as Expect };
    }),
    // Extra parameters someone added after signing.
    fc.tuple(fresh, fc.array(fc.tuple(STRAY_PARAM, personalArb(fz)), { minLength: 1, maxLength: 5 })).map(([fields, extra]) => {
      const p = signed('send', fields);
      for (const [k, v] of extra) p[k] = v;
      return { label: 'extra parameters after signing', body: encodeForm(p, 'gbk'), expect: { kind: 'bad_sign' } as Expect };
    }),
    // A parameter given twice (which value was signed is ambiguous).
    fc.tuple(fresh, fc.constantFrom('num', 'order_id', 'mobile', 'sign', 'method'), personalArb(fz)).map(([fields, field, other]) => {
      const text = `${encodeForm(signed('send', fields), 'gbk').toString('ascii')}&${field}=${other}`;
      return { label: `${field} twice`, body: Buffer.from(text, 'ascii'), expect: { kind: 'malformed', status: 400 } as Expect };
    }),
    // Forged signs: random, another key's, another notice's, none.
    fc.tuple(fresh, fc.oneof(fc.stringMatching(/^[0-9A-F]{32}$/), fc.string({ maxLength: 40 }), fc.constant('wrong-key'), fc.constant('other-notice'), fc.constant(null))).map(([fields, forged]) => {
      const p: Record<string, string> = { timestamp: formatTaobaoTime(Date.now()), ...fields, method: 'send' };
      if (forged === 'wrong-key') p['sign'] = signNotice(p, 'not-the-notice-key-0123456789');
      else if (forged === 'other-notice') p['sign'] = signNotice({ ...p, num: String(Number(p['num']) + 1) }, fz.noticeKey);
      else if (forged !== null) p['sign'] = forged;
      return { label: 'forged sign', body: encodeForm(p, 'gbk'), expect: { kind: 'bad_sign' } as Expect };
    }),
    // Timestamps too far ahead, too old, or not a Taobao time at all.
    fc.tuple(fresh, fc.oneof(fc.integer({ min: 11 * 60_000, max: 400 * 24 * HOUR }), fc.integer({ min: -400 * 24 * HOUR, max: -(24 * HOUR + 60_000) }))).map(([fields, skew]) => ({
      label: `timestamp ${Math.round(skew / 60_000)} min off`,
      body: encodeForm(signed('send', fields, Date.now() + skew), 'gbk'),
      expect: { kind: 'invalid', reason: 'STALE_TIMESTAMP', field: 'timestamp' } as Expect,
    })),
    fc.tuple(fresh, fc.constantFrom('2026-02-30 10:00:00', '1700000000', '2026/11/20 10:00:00', '2026-11-20T10:00:00Z', 'yesterday', '9999-99-99 99:99:99')).map(([fields, ts]) => ({
      label: 'malformed timestamp',
      body: encodeForm(signed('send', { ...fields, timestamp: ts }), 'gbk'),
      expect: { kind: 'invalid', reason: 'MALFORMED_TIMESTAMP', field: 'timestamp' } as Expect,
    })),
    // Numbers (and enums) out of range, correctly signed.
    fc.tuple(fresh, fc.constantFrom(...Object.keys(OUT_OF_RANGE))).chain(([fields, field]) =>
      OUT_OF_RANGE[field]!.map((value) => {
        if (field === 'id_card' || field === 'mobile') fz.personalData.add(value);
        const f = { ...fields, [field]: value };
        return { label: `${field}=${value.slice(0, 30)}`, body: encodeForm(signed('send', f), 'gbk'), expect: { kind: 'invalid', reason: 'INVALID_FIELD', field } as Expect };
      }),
    ),
    // Unknown methods.
    fc.tuple(fresh, fc.oneof(fc.constantFrom('Send', 'SEND', 'refund', 'consume', 'send ', 'order-modify'), fc.stringMatching(/^[a-z_]{1,20}$/).filter((m) => !['send', 'resend', 'modified', 'cancel', 'order_modify'].includes(m)))).map(([fields, method]) => ({
      label: `method ${method}`,
      body: encodeForm(signed(method, fields), 'gbk'),
      expect: { kind: 'invalid', reason: 'UNKNOWN_METHOD', field: 'method' } as Expect,
    })),
    // order_modify whose `data` is not JSON (or not the JSON it should be), for the seeded order.
    fc
      .oneof(
        fc.string({ minLength: 1, maxLength: 200 }).filter((s) => {
          try {
            const v = JSON.parse(s) as Record<string, unknown> | null;
            return !(v && typeof v === 'object' && 'valid_start' in v);
          } catch {
            return true;
          }
        }),
        fc.constantFrom('{"valid_start":"2026-01-02 00:00:00","valid_ends":"2026-01-01 00:00:00"}', '{"valid_start":-1,"valid_ends":5}', '{"valid_start":1.5,"valid_ends":2.5}', '[1,2]', '{"valid_start":"x","valid_ends":"y"}', '{"__proto__":{"valid_start":1,"valid_ends":2}}'),
        personalArb(fz),
      )
      .map((data) => ({
        label: 'order_modify with bad data',
        body: encodeForm(signed('order_modify', { order_id: fz.seeded.taobaoOrderId, token: fz.seeded.token, sub_method: '1', data }), 'gbk'),
        expect: { kind: 'invalid', reason: 'INVALID_FIELD', field: 'data' } as Expect,
      })),
    // order_modify with an unknown sub_method; cancel / resend with bad counts, for the seeded order.
    fc.constantFrom('0', '3', '-1', 'x', '1.0').map((sub) => ({
      label: `order_modify sub_method ${sub}`,
      body: encodeForm(signed('order_modify', { order_id: fz.seeded.taobaoOrderId, token: fz.seeded.token, sub_method: sub }), 'gbk'),
      expect: { kind: 'invalid', reason: 'INVALID_FIELD', field: 'sub_method' } as Expect,
    })),
    fc.tuple(fc.constantFrom('cancel_num', 'left_num'), fc.constantFrom('0', '-1', '1.5', '1e3', '99999999999', 'x')).filter(([f, v]) => !(f === 'left_num' && v === '0')).map(([field, value]) => {
      const method = field === 'cancel_num' ? 'cancel' : 'resend';
      return {
        label: `${method} ${field}=${value}`,
        body: encodeForm(signed(method, { order_id: fz.seeded.taobaoOrderId, token: fz.seeded.token, [field]: value, mobile: fz.seeded.mobile }), 'gbk'),
        expect: { kind: 'invalid', reason: 'INVALID_FIELD', field } as Expect,
      };
    }),
    // Wrong HTTP methods and content types.
    fc.tuple(fresh, fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH')).map(([fields, method]) => ({
      label: `${method} /taobao/notices`,
      body: encodeForm(signed('send', fields), 'gbk'),
      method,
      expect: { kind: 'http', status: 405 } as Expect,
    })),
    fc.tuple(fresh, fc.constantFrom('application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded; charset=latin1', 'application/x-www-form-urlencoded; charset=utf-16')).map(([fields, ct]) => ({
      label: `content type ${ct}`,
      body: encodeForm(signed('send', fields), 'gbk'),
      contentType: ct,
      expect: { kind: 'malformed', status: 415 } as Expect,
    })),
    // Replays of the seeded send notice: exactly as first sent, or re-stamped and re-signed. Stored answer, no effect.
    fc.boolean().map((restamp) => ({
      label: restamp ? 'send replayed with a new timestamp' : 'send replayed byte for byte',
      body: restamp ? fz.seededReplay(Date.now()) : fz.seededReplay(undefined),
      expect: { kind: 'duplicate' } as Expect,
    })),
  ];
  return labelled(fc.oneof(...cases));
}

/** Sends one case and checks the answer. */
export async function sendCase(fz: FuzzGateway, c: Case): Promise<void> {
  check(await fz.postNotice(c.body, c.contentType, c.method), c.expect, c.label);
}

export async function runNoticeDoor(fz: FuzzGateway, runs?: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(noticeCaseArb(fz), async (c) => {
      const before = await fz.snapshot();
      await sendCase(fz, c);
      assertUnchanged(before, await fz.snapshot(), c.label);
    }),
    fuzzParams(runs),
  );
}
