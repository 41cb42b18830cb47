/**
 * Signing of calls to Taobao's TOP router (the API *we* call; inbound notices use notice-signature.ts).
 * All system and business parameters except `sign` and file (byte) parameters, keys sorted by ordinal,
 * concatenated key+value, UTF-8:
 *   md5:  UPPER(HEX(MD5(secret + concat + secret)))
 *   hmac: UPPER(HEX(HMAC_MD5(key = secret, concat)))
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ordinal } from './notice-signature';

export type TopSignMethod = 'md5' | 'hmac';

export function topSigningText(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== undefined && params[k] !== '')
    .sort(ordinal)
    .map((k) => k + params[k])
    .join('');
}

/** `params` must hold only text parameters: leave file parameters out before signing. */
export function signTopRequest(params: Readonly<Record<string, string>>, secret: string, method: TopSignMethod): string {
  const text = topSigningText(params);
  const digest =
    method === 'md5'
      ? createHash('md5').update(secret + text + secret, 'utf8').digest('hex')
      : createHmac('md5', Buffer.from(secret, 'utf8')).update(text, 'utf8').digest('hex');
  return digest.toUpperCase();
}

/** Constant-time check of `params.sign` (used by the TOP simulator in tests, and by anything that must verify). */
export function verifyTopSignature(
  params: Readonly<Record<string, string>>,
  secret: string,
  method: TopSignMethod,
): boolean {
  const given = Buffer.from((params['sign'] ?? '').toUpperCase(), 'utf8');
  const expected = Buffer.from(signTopRequest(params, secret, method), 'ascii');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
