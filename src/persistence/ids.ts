import { randomFillSync } from 'node:crypto';

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

// Random bytes are drawn from the OS a pool at a time: one call per id was ~1.5% of the gateway's CPU on a busy
// Redeem path (a write-off, its serial and its work each take an id). Each byte is used once.
const pool = Buffer.alloc(4096);
let poolUsed = pool.length;

function randomPart(length: number): string {
  if (poolUsed + length > pool.length) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  let out = '';
  for (let i = poolUsed; i < poolUsed + length; i++) out += ALPHABET[pool[i]! % 32];
  poolUsed += length;
  return out;
}
