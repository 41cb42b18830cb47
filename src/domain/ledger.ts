/**
 * The per-order quantity ledger (see `Ledger` in model.ts). Every operation moves units between buckets,
 * applies completely or is rejected with a reason, and never mutates its input.
 *   purchased = available + consumed + refundPending + refunded + expired, no bucket negative.
 */
import { InvalidDomainArgumentError, LedgerInvariantError } from './domain-errors';
import type { Ledger } from './model';
import { isPositiveCount, ok, rejected, type Result } from './result';

export type LedgerRejection =
  | 'NON_POSITIVE_COUNT'
  | 'NOT_ENOUGH_AVAILABLE'
  | 'NOT_ENOUGH_EXPIRED'
  | 'NOT_ENOUGH_CONSUMED'
  | 'NOT_ENOUGH_PENDING';

export type LedgerResult = Result<Ledger, LedgerRejection>;

/** Where a unit comes from or goes back to, for moves that can involve either unused bucket. */
export type UnusedBucket = 'available' | 'expired';

const BUCKETS = ['available', 'consumed', 'refundPending', 'refunded', 'expired'] as const;

/** A fresh order: every purchased unit is available. */
export function newLedger(purchased: number): Ledger {
  if (!isPositiveCount(purchased)) {
    throw new InvalidDomainArgumentError(`purchased must be a positive safe integer, got ${purchased}`);
  }
  return freeze({ purchased, available: purchased, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
}

/** Throws LedgerInvariantError when a bucket is negative or fractional, or the equation does not hold. */
export function assertLedger(l: Ledger): void {
  if (!Number.isSafeInteger(l.purchased) || l.purchased < 0) {
    throw new LedgerInvariantError(`purchased must be a non-negative safe integer, got ${l.purchased}`);
  }
  let sum = 0;
  for (const b of BUCKETS) {
    const v = l[b];
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new LedgerInvariantError(`bucket ${b} must be a non-negative safe integer, got ${v}`);
    }
    sum += v;
  }
  if (sum !== l.purchased) {
    throw new LedgerInvariantError(`buckets add up to ${sum} but ${l.purchased} were purchased`);
  }
}

/** Whether two ledgers hold the same quantities. */
export function sameLedger(a: Ledger, b: Ledger): boolean {
  return a.purchased === b.purchased && BUCKETS.every((k) => a[k] === b[k]);
}

/** Admission at the gate: k available units become consumed. */
export function consume(l: Ledger, k: number): LedgerResult {
  return move(l, k, 'available', 'consumed');
}

/** A write-off undone: k consumed units are usable again, or expired when validity has already ended. */
export function reverseConsume(l: Ledger, k: number, to: UnusedBucket = 'available'): LedgerResult {
  return move(l, k, 'consumed', to);
}

/** A refund asked of the supplier: k unused units wait for its audit. */
export function requestRefund(l: Ledger, k: number, from: UnusedBucket): LedgerResult {
  return move(l, k, from, 'refundPending');
}

/** The supplier approved: k pending units are refunded for good. */
export function approveRefund(l: Ledger, k: number): LedgerResult {
  return move(l, k, 'refundPending', 'refunded');
}

/** The supplier rejected: k pending units return to available, or to expired if validity has ended. */
export function rejectRefund(l: Ledger, k: number, to: UnusedBucket): LedgerResult {
  return move(l, k, 'refundPending', to);
}

/** Validity extended past now: k expired units are usable again. */
export function restoreExpired(l: Ledger, k: number): LedgerResult {
  return move(l, k, 'expired', 'available');
}

/** End of validity: every available unit expires. Rejected when nothing is available. */
export function expireAvailable(l: Ledger): LedgerResult {
  if (l.available === 0) return rejected('NOT_ENOUGH_AVAILABLE', 'no available units to expire');
  return move(l, l.available, 'available', 'expired');
}

type Bucket = (typeof BUCKETS)[number];

const SHORTAGE: Record<Bucket, LedgerRejection> = {
  available: 'NOT_ENOUGH_AVAILABLE',
  expired: 'NOT_ENOUGH_EXPIRED',
  consumed: 'NOT_ENOUGH_CONSUMED',
  refundPending: 'NOT_ENOUGH_PENDING',
  // Nothing ever moves out of refunded; kept for completeness of the map.
  refunded: 'NOT_ENOUGH_PENDING',
};

function move(l: Ledger, k: number, from: Bucket, to: Bucket): LedgerResult {
  assertLedger(l);
  if (!isPositiveCount(k)) return rejected('NON_POSITIVE_COUNT', `count must be a positive integer, got ${k}`);
  if (l[from] < k) {
    return rejected(SHORTAGE[from], `asked to move ${k} ${from} unit(s) but only ${l[from]} left`, {
      requested: k,
      [from]: l[from],
    });
  }
  const next = freeze({ ...l, [from]: l[from] - k, [to]: l[to] + k });
  assertLedger(next);
  return ok(next);
}

function freeze(l: Ledger): Ledger {
  return Object.freeze(l);
}
