/**
 * Signature of Taobao's inbound e-voucher notices (send / resend / modified / cancel / order_modify).
 * Signed with the *notice key* (通知验证密钥), not the TOP app secret:
 *   UPPER(HEX(MD5(noticeKey + k1 + v1 + k2 + v2 + ...)))
 * keys sorted by ordinal, `sign` excluded, empty values skipped, key prefixed only, MD5 over GBK bytes.
 * Taobao signs the GBK bytes even when a value is Chinese; UTF-8 gives a different digest.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import iconv from 'iconv-lite';

/** The exact text that gets hashed (exported for diagnostics in tests; it contains the secret - never log it). */
export function noticeSigningText(params: Readonly<Record<string, string>>, noticeKey: string): string {
  const keys = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== undefined && params[k] !== '')
    .sort(ordinal);
  let text = noticeKey;
  for (const k of keys) text += k + params[k];
  return text;
}

export function signNotice(params: Readonly<Record<string, string>>, noticeKey: string): string {
  const bytes = iconv.encode(noticeSigningText(params, noticeKey), 'gbk');
  return createHash('md5').update(bytes).digest('hex').toUpperCase();
}

/** True when `params.sign` matches. Case of the hex digits is ignored; the comparison is constant-time. */
export function verifyNoticeSignature(params: Readonly<Record<string, string>>, noticeKey: string): boolean {
  const given = params['sign'];
  if (given === undefined || given === '') return false;
  const expected = Buffer.from(signNotice(params, noticeKey), 'ascii');
  const actual = Buffer.from(given.toUpperCase(), 'utf8');
  if (actual.length !== expected.length) {
    // Still spend a comparison so a wrong length is not measurably faster than a wrong digest.
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(actual, expected);
}

/** Ordinal (code unit) order, independent of locale - what Taobao's Java TreeMap does for ASCII keys. */
export function ordinal(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
