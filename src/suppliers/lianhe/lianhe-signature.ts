/**
 * Lianhe request/notification signing (external-apis.md §3.1):
 *   Authorization: LH {apiName}:base64(HMAC-SHA1(clientSecret, "POST" + " " + uri + "\n" + Date))
 * where uri is path + query without host, and Date is the RFC-1123 GMT header value.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function lianheSignature(clientSecret: string, method: string, uri: string, date: string): string {
  return createHmac('sha1', clientSecret).update(`${method.toUpperCase()} ${uri}\n${date}`, 'utf8').digest('base64');
}

export function lianheAuthorization(apiName: string, signature: string): string {
  return `LH ${apiName}:${signature}`;
}

/** RFC-1123 date in GMT, e.g. "Mon, 11 Dec 2017 15:27:10 GMT". */
export function rfc1123(epochMs: number): string {
  return new Date(epochMs).toUTCString();
}

export type AuthorizationCheck = { ok: true } | { ok: false; why: string };

/** Verifies an Authorization header against the expected uri, Date header and allowed clock skew. */
export function verifyLianheAuthorization(input: {
  clientSecret: string;
  apiName?: string;
  method: string;
  uri: string;
  authorization: string | undefined;
  date: string | undefined;
  now: number;
  maxSkewMs: number;
}): AuthorizationCheck {
  const match = /^LH ([^:\s]+):(\S+)$/.exec(input.authorization?.trim() ?? '');
  if (!match) return { ok: false, why: 'missing or malformed Authorization' };
  if (input.apiName !== undefined && match[1] !== input.apiName) return { ok: false, why: 'unexpected api name' };
  if (!input.date) return { ok: false, why: 'missing Date' };
  const at = Date.parse(input.date);
  if (!Number.isFinite(at) || !/GMT$/.test(input.date.trim())) return { ok: false, why: 'Date is not RFC-1123 GMT' };
  if (Math.abs(input.now - at) > input.maxSkewMs) return { ok: false, why: 'stale Date' };
  const expected = Buffer.from(lianheSignature(input.clientSecret, input.method, input.uri, input.date), 'utf8');
  const given = Buffer.from(match[2]!, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, why: 'signature mismatch' };
  return { ok: true };
}
