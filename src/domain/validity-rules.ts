/**
 * The validity window of an order's codes (both ends inclusive, epoch ms) and what follows from it:
 * admission inside it, extension only, and the five-day grace for refunding expired units.
 */
import type { ValidityWindow } from './model';
import { ok, rejected, type Result } from './result';

/** Expired units may be refunded if the request reaches the supplier within five days after the end. */
export const EXPIRED_REFUND_GRACE_MS = 5 * 24 * 60 * 60 * 1000;

export type ValidityRejection = 'VALIDITY_MALFORMED' | 'VALIDITY_SHORTENED';

/** Whether the window is usable at all: safe-integer instants, end not before start. */
export function isWellFormedValidity(window: ValidityWindow): boolean {
  return Number.isSafeInteger(window.start) && Number.isSafeInteger(window.end) && window.end >= window.start;
}

export function isWithinValidity(window: ValidityWindow, now: number): boolean {
  return now >= window.start && now <= window.end;
}

/** Validity has ended: strictly after the (inclusive) end. */
export function hasValidityEnded(window: ValidityWindow, now: number): boolean {
  return now > window.end;
}

/**
 * The seller may only extend: the end may not move earlier and the start may not move later (either
 * would take days away from a buyer who already paid). An identical window is accepted (repeated notice).
 */
export function changeValidity(old: ValidityWindow, next: ValidityWindow): Result<ValidityWindow, ValidityRejection> {
  if (!isWellFormedValidity(next)) {
    return rejected('VALIDITY_MALFORMED', `validity end ${next.end} is before start ${next.start} or not an instant`);
  }
  if (next.end < old.end || next.start > old.start) {
    return rejected('VALIDITY_SHORTENED', 'validity may only be extended: end earlier or start later refused', {
      oldStart: old.start,
      oldEnd: old.end,
    });
  }
  return ok({ start: next.start, end: next.end });
}

/** Last instant (inclusive) at which expired units may still be refunded: end + 5 days. */
export function expiredRefundDeadline(window: ValidityWindow): number {
  return window.end + EXPIRED_REFUND_GRACE_MS;
}

/** Whether expired units of this window may be refunded now. */
export function canRefundExpired(window: ValidityWindow, now: number): boolean {
  return now <= expiredRefundDeadline(window);
}
