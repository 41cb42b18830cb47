/**
 * Bad input at the supplier callback doors of a real Gateway on SQLite: `/suppliers/<instance>/callback` for a
 * Zhiyoubao, a Lianhe and a sandbox instance configured via SUPPLIERS_FILE. Broken XML / JSON, entity-expansion
 * attempts (billion laughs, external entities), wrong or missing signatures, stale dates, huge bodies, and
 * correctly signed callbacks that are malformed. Each gets the supplier's failure reply (or 404/405/413), records
 * nothing, and leaves no personal number in the log.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { LIANHE_NOTIFY_URI } from '../../src/suppliers/lianhe/lianhe-adapter';
import { lianheAuthorization, lianheSignature, rfc1123 } from '../../src/suppliers/lianhe/lianhe-signature';
import { SANDBOX_SIGNATURE_HEADER } from '../../src/suppliers/sandbox/sandbox-adapter';
import { md5Hex } from '../../src/suppliers/zhiyoubao/pwb-xml';
import {
  FUZZ_RUNS,
  LIANHE,
  SANDBOX,
  ZYB,
  assertNoPersonalDataInLogs,
  assertUnchanged,
  fuzzParams,
  fuzzTimeoutMs,
  labelled,
  personalArb,
  startFuzzGateway,
  type FuzzGateway,
} from './fuzz-gateway';

const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<PWBRequest><order_no>&lol9;</order_no><checkNum>1</checkNum></PWBRequest>`;
const XXE = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY net SYSTEM "http://127.0.0.1:9/x">]>
<PWBRequest><order_no>&xxe;&net;</order_no><sign>x</sign></PWBRequest>`;

/** Hostile bodies with no valid signature of any kind. */
const hostileBodyArb = fc.oneof(
  fc.constantFrom(BILLION_LAUGHS, XXE, '<', '<?xml version="1.0"?><a>', '{', '{"body":', '[]', 'null', '"x"', '{"method":"snNotify","body":{"orderId":', '\u0000\u0001', '%zz=%'),
  fc.json({ maxDepth: 4 }),
  fc.string({ maxLength: 500 }),
  fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b).toString('latin1')),
);

interface CallbackCase {
  readonly label: string;
  readonly instance: string;
  readonly method: string;
  readonly query?: Record<string, string>;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** The status the gateway must answer; 'failure' bodies come with 200 from the adapters. */
  readonly status: number;
  readonly failureBody: boolean;
}

const failure = (c: Omit<CallbackCase, 'status' | 'failureBody'>): CallbackCase => ({ ...c, status: 200, failureBody: true });

function lianheHeaders(opts: { secret?: string; date?: string; apiName?: string } = {}): Record<string, string> {
  const date = opts.date ?? rfc1123(Date.now());
  const sig = lianheSignature(opts.secret ?? LIANHE.clientSecret, 'POST', LIANHE_NOTIFY_URI, date);
  return { 'content-type': 'application/json', date, authorization: lianheAuthorization(opts.apiName ?? LIANHE.apiName, sig) };
}

function caseArb(fz: FuzzGateway): fc.Arbitrary<CallbackCase> {
  const pd = personalArb(fz);
  const zybKind = fc.constantFrom('order_no', 'order_code', 'orderCode');
  return labelled(
    fc.oneof(
      // ---- Zhiyoubao: GET query (or form POST) with md5 signs ----
      fc.tuple(zybKind, pd, fc.oneof(fc.stringMatching(/^[0-9a-f]{32}$/), fc.constant(''), fc.string({ maxLength: 40 }))).map(([kind, value, sign]) =>
        failure({
          label: `zhiyoubao ${kind} with a forged sign`,
          instance: ZYB.instance,
          method: 'GET',
          query: { [kind]: value, sign, checkNum: '1', status: 'checked', auditStatus: 'success' },
        }),
      ),
      fc.tuple(pd, fc.constantFrom('-1', 'x', '1.5', '', '1e3', '9999999999')).map(([orderNo, checkNum]) =>
        failure({ label: `zhiyoubao check notice, signed, checkNum=${checkNum}`, instance: ZYB.instance, method: 'GET', query: { order_no: orderNo, checkNum, sign: md5Hex(`order_no=${orderNo}${ZYB.privateKey}`) } }),
      ),
      fc.tuple(pd, fc.constantFrom('approved', '', 'SUCCESS', 'ok', '1')).map(([orderCode, auditStatus]) =>
        failure({ label: `zhiyoubao audit notice, signed, auditStatus=${auditStatus}`, instance: ZYB.instance, method: 'GET', query: { orderCode, auditStatus, sign: md5Hex(`${orderCode}${ZYB.privateKey}`) } }),
      ),
      fc.constant(failure({ label: 'zhiyoubao finish notice, signed, no status', instance: ZYB.instance, method: 'GET', query: { order_code: 'Z1', sign: md5Hex(`order_code=Z1${ZYB.privateKey}`) } })),
      fc.tuple(hostileBodyArb, fc.constantFrom('application/xml', 'text/xml', 'application/x-www-form-urlencoded', 'application/json')).map(([body, ct]) =>
        failure({ label: `zhiyoubao POST ${ct} hostile body`, instance: ZYB.instance, method: 'POST', headers: { 'content-type': ct }, body }),
      ),
      fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 40 }), { maxKeys: 8 }).filter((q) => !('order_no' in q) && !('order_code' in q) && !('orderCode' in q)).map((query) =>
        failure({ label: 'zhiyoubao random query', instance: ZYB.instance, method: 'GET', query }),
      ),
      // ---- Lianhe: Authorization over method + uri + Date, JSON body ----
      fc.tuple(hostileBodyArb, fc.constantFrom('none', 'wrong-secret', 'garbage', 'stale', 'future', 'not-gmt', 'wrong-api')).map(([body, auth]) => {
        const headers =
          auth === 'none'
            ? { 'content-type': 'application/json' }
            : auth === 'wrong-secret'
              ? lianheHeaders({ secret: 'not-the-secret' })
              : auth === 'garbage'
                ? { 'content-type': 'application/json', date: rfc1123(Date.now()), authorization: 'LH x' }
                : auth === 'stale'
                  ? lianheHeaders({ date: rfc1123(Date.now() - 3_600_000) })
                  : auth === 'future'
                    ? lianheHeaders({ date: rfc1123(Date.now() + 3_600_000) })
                    : auth === 'not-gmt'
                      ? lianheHeaders({ date: new Date().toString() })
                      : lianheHeaders({ apiName: 'other api' });
        return failure({ label: `lianhe ${auth} authorization`, instance: LIANHE.instance, method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
      }),
      // Correctly authorised (the Lianhe sign does not cover the body) but the body is broken or incomplete.
      fc
        .oneof(
          fc.constantFrom(BILLION_LAUGHS, XXE, '{', 'null', '[]', '{"body":null}', '{"method":"snNotify"}'),
          pd.map((id) => JSON.stringify({ code: 10000, method: 'snNotify', body: { orderId: id } })),
          pd.map((id) => JSON.stringify({ code: 10000, method: 'snNotify', body: { orderId: id, usedQuantity: -1 } })),
          fc.integer().filter((c) => c !== 10000 && c !== 20000).map((code) => JSON.stringify({ code, method: 'reNotify', body: { orderId: 'L1', refundId: 'r' } })),
          fc.stringMatching(/^[a-zA-Z]{1,12}$/).filter((m) => m !== 'snNotify' && m !== 'reNotify').map((method) => JSON.stringify({ code: 10000, method, body: { orderId: 'L1' } })),
          fc.constant(JSON.stringify({ code: 10000, method: 'snNotify', body: { usedQuantity: 1 } })),
        )
        .map((body) => failure({ label: 'lianhe authorised, broken body', instance: LIANHE.instance, method: 'POST', headers: lianheHeaders(), body })),
      // ---- Sandbox: HMAC-SHA256 of the raw body ----
      fc.tuple(hostileBodyArb, fc.constantFrom('none', 'wrong', 'truncated')).map(([body, how]) => {
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        const good = createHmac('sha256', SANDBOX.callbackSecret).update(text).digest('hex');
        const sig = how === 'none' ? undefined : how === 'wrong' ? createHmac('sha256', 'nope').update(text).digest('hex') : good.slice(0, 40);
        return failure({ label: `sandbox ${how} signature`, instance: SANDBOX.instance, method: 'POST', headers: { 'content-type': 'application/json', ...(sig ? { [SANDBOX_SIGNATURE_HEADER]: sig } : {}) }, body: text });
      }),
      fc
        .oneof(
          fc.constantFrom(BILLION_LAUGHS, '{', '[]', 'null'),
          // fc.json could, very rarely, build a well-formed sandbox callback: keep only what cannot be one.
          fc.json({ maxDepth: 3 }).map((j) => (typeof j === 'string' ? j : JSON.stringify(j))).filter((text) => {
            const v = JSON.parse(text) as Record<string, unknown> | null;
            return !(v && typeof v === 'object' && (v.type === 'admission' || v.type === 'refund_audit'));
          }),
          fc.tuple(pd, fc.integer({ max: 0 })).map(([orderCode, count]) => JSON.stringify({ type: 'admission', eventId: 'e1', orderCode, count })),
          pd.map((orderCode) => JSON.stringify({ type: 'refund', eventId: 'e1', orderCode, count: 1 })),
          pd.map((orderCode) => JSON.stringify({ type: 'admission', eventId: '', orderCode, count: 1 })),
          pd.map((orderCode) => JSON.stringify({ type: 'refund_audit', eventId: 'e2', orderCode, batchNo: 'b', approved: 'yes' })),
        )
        .map((text) =>
          failure({
            label: 'sandbox signed, broken body',
            instance: SANDBOX.instance,
            method: 'POST',
            headers: { 'content-type': 'application/json', [SANDBOX_SIGNATURE_HEADER]: createHmac('sha256', SANDBOX.callbackSecret).update(text).digest('hex') },
            body: text,
          }),
        ),
      // ---- paths and methods that are no door ----
      fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,20}$/).filter((s) => !([ZYB.instance, LIANHE.instance, SANDBOX.instance] as string[]).includes(s)), fc.constantFrom('GET', 'POST')).map(([instance, method]) => ({
        label: `unknown instance ${instance}`,
        instance,
        method,
        body: method === 'POST' ? '{}' : undefined,
        status: 404,
        failureBody: false,
      })),
      fc.tuple(fc.constantFrom(ZYB.instance, LIANHE.instance, SANDBOX.instance), fc.constantFrom('PUT', 'DELETE', 'PATCH')).map(([instance, method]) => ({
        label: `${method} on ${instance}`,
        instance,
        method,
        body: '{}',
        status: 405,
        failureBody: false,
      })),
      // A body beyond the HTTP limit (1 MiB), signed or not.
      fc.constantFrom(LIANHE.instance, SANDBOX.instance).map((instance) => {
        const body = JSON.stringify({ type: 'admission', eventId: 'big', orderCode: 'x'.repeat(1_200_000), count: 1 });
        const headers = instance === SANDBOX.instance ? { [SANDBOX_SIGNATURE_HEADER]: createHmac('sha256', SANDBOX.callbackSecret).update(body).digest('hex') } : lianheHeaders();
        return { label: `1.2 MB body to ${instance}`, instance, method: 'POST', headers, body, status: 413, failureBody: false };
      }),
    ),
  );
}

async function send(fz: FuzzGateway, c: CallbackCase): Promise<{ status: number; text: string }> {
  const url = new URL(`${fz.httpBase}/suppliers/${c.instance}/callback`);
  for (const [k, v] of Object.entries(c.query ?? {})) url.searchParams.append(k, v);
  const res = await fetch(url, { method: c.method, headers: c.headers, body: c.body, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, text: await res.text() };
}

describe(`supplier callback doors under hostile input (SQLite, ${FUZZ_RUNS} runs)`, { timeout: fuzzTimeoutMs(1) }, () => {
  let fz: FuzzGateway;
  before(async () => {
    fz = await startFuzzGateway('sqlite');
  });
  after(async () => {
    await fz?.stop();
  });

  it('answers every hostile callback with the failure reply (or 404/405/413) and records nothing', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(fz), async (c) => {
        const before = await fz.snapshot();
        const answer = await send(fz, c);
        assert.equal(answer.status, c.status, `${c.label}: ${answer.status} ${answer.text.slice(0, 200)}`);
        if (c.failureBody) assert.equal(answer.text, 'failure', c.label);
        assertUnchanged(before, await fz.snapshot(), c.label);
      }),
      fuzzParams(),
    );
    await fz.assertAlive();
  });

  it('keeps personal numbers out of the log', () => {
    assertNoPersonalDataInLogs(fz);
  });
});
