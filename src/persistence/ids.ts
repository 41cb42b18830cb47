import { randomBytes } from 'node:crypto';

/**
 * A time-sortable id: prefix + 10 base32 characters of epoch ms + 16 random base32 characters, e.g.
 * 'o_01JD4…'. Ids made later sort later (to the millisecond), so listings and logs read in order.
 */
export function newId(prefix: string, nowMs: number): string {
  return `${prefix}${encodeTime(nowMs)}${randomPart(16)}`;
}

/** Our order id: 'o_' + time-sortable random. */
export function newOrderId(nowMs: number): string {
  return newId('o_', nowMs);
}

// Crockford base32: no I, L, O, U; sorts correctly as plain ASCII.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function encodeTime(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not an epoch-ms instant: ${ms}`);
  let out = '';
  let rest = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function randomPart(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += ALPHABET[b % 32];
  return out;
}
