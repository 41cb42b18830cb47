/**
 * The order aggregate: a pure snapshot and the business operations on it. Each operation returns a new
 * snapshot or a rejection (and then changes nothing); the ledger moves the units and the state machine
 * checks the state that follows, so a bug that would make an illegal transition throws instead.
 */
import { InvalidDomainArgumentError } from './domain-errors';
import * as ledgers from './ledger';
import type { LedgerRejection, LedgerResult } from './ledger';
import type { Ledger, OrderState, ValidityWindow } from './model';
import { deriveState, OrderEvent, phaseAfter, transition, type OrderPhase } from './order-state-machine';
import { isPositiveCount, ok, rejected, type Result } from './result';
import {
  canRefundExpired,
  changeValidity as checkValidityChange,
  expiredRefundDeadline,
  hasValidityEnded,
  isWellFormedValidity,
  type ValidityRejection,
} from './validity-rules';
import { canReverseWriteOff, type WriteOff, type WriteOffRejection } from './write-off-rules';

export interface OrderSnapshot {
  readonly state: OrderState;
  readonly phase: OrderPhase;
  readonly ledger: Ledger;
  readonly validity: ValidityWindow;
  /** Every admission, reversed or not, in the order they happened. */
  readonly writeOffs: readonly WriteOff[];
}

export type OrderRejection =
  | LedgerRejection
  | WriteOffRejection
  | ValidityRejection
  | 'NOT_ISSUED'
  | 'NOT_ISSUING'
  | 'ISSUE_IN_PROGRESS'
  | 'ALREADY_ISSUED'
  | 'ORDER_CLOSED'
  | 'NOT_YET_VALID'
  | 'EXPIRED'
  | 'DUPLICATE_SERIAL'
  | 'WRITE_OFF_NOT_FOUND'
  | 'EXCEEDS_REFUNDABLE'
  | 'VALIDITY_NOT_ENDED';

export type OrderResult = Result<OrderSnapshot, OrderRejection>;

/** A paid order Taobao asked codes for; nothing is usable until it is issued. */
export function newOrder(
  purchased: number,
  validity: ValidityWindow,
): Result<OrderSnapshot, 'NON_POSITIVE_COUNT' | 'VALIDITY_MALFORMED'> {
  if (!isPositiveCount(purchased)) {
    return rejected('NON_POSITIVE_COUNT', `purchased must be a positive integer, got ${purchased}`);
  }
  if (!isWellFormedValidity(validity)) return rejected('VALIDITY_MALFORMED', 'validity end is before its start');
  const ledger = ledgers.newLedger(purchased);
  // A new order has no event behind it: its state is what its phase says.
  return ok(
    freeze({
      state: deriveState(ledger, 'received'),
      phase: 'received',
      ledger,
      validity: Object.freeze({ start: validity.start, end: validity.end }),
      writeOffs: Object.freeze([]),
    }),
  );
}

/** We are about to place the supplier order (first attempt, or an operator's replay after a failure). */
export function startIssue(order: OrderSnapshot): OrderResult {
  if (order.phase === 'issuing') return rejected('ISSUE_IN_PROGRESS', 'the order is already being issued');
  const notPreIssue = rejectUnlessPreIssue(order);
  if (notPreIssue) return notPreIssue;
  return applied(order, OrderEvent.IssueStarted, ok(order.ledger));
}

/** The supplier gave the codes and Taobao took them: the units become usable. */
export function markIssued(order: OrderSnapshot): OrderResult {
  const notIssuing = rejectUnlessIssuing(order);
  if (notIssuing) return notIssuing;
  return applied(order, OrderEvent.IssueSucceeded, ok(order.ledger));
}

/** The supplier refused for good (we call failsend). */
export function markIssueFailed(order: OrderSnapshot): OrderResult {
  const notIssuing = rejectUnlessIssuing(order);
  if (notIssuing) return notIssuing;
  return applied(order, OrderEvent.IssueFailed, ok(order.ledger));
}

/** Abandon an order that was never issued. Issued orders end through refunds, admissions or expiry. */
export function close(order: OrderSnapshot): OrderResult {
  if (order.phase === 'issuing') return rejected('ISSUE_IN_PROGRESS', 'wait for the issue to succeed or fail');
  const notPreIssue = rejectUnlessPreIssue(order);
  if (notPreIssue) return notPreIssue;
  return applied(order, OrderEvent.Closed, ok(order.ledger));
}

/** Admission at a gate of k units, recorded under our unique consume serial. */
export function admit(order: OrderSnapshot, k: number, now: number, serial: string): OrderResult {
  assertInstant(now);
  if (serial.length === 0) throw new InvalidDomainArgumentError('a write-off needs a serial number');
  if (!isPositiveCount(k)) return rejected('NON_POSITIVE_COUNT', `count must be a positive integer, got ${k}`);
  const notIssued = rejectUnlessIssued(order);
  if (notIssued) return notIssued;
  if (order.writeOffs.some((w) => w.serial === serial)) {
    return rejected('DUPLICATE_SERIAL', `serial ${serial} was already used for this order`);
  }
  if (now < order.validity.start) {
    return rejected('NOT_YET_VALID', 'the codes are not valid yet', { validFrom: order.validity.start });
  }
  if (hasValidityEnded(order.validity, now)) {
    return rejected('EXPIRED', 'the codes are past their validity', { validUntil: order.validity.end });
  }
  const writeOff: WriteOff = Object.freeze({ serial, count: k, admittedAt: now, reversedAt: null });
  return applied(order, OrderEvent.Consumed, ledgers.consume(order.ledger, k), {
    writeOffs: Object.freeze([...order.writeOffs, writeOff]),
  });
}

/**
 * Undo the admission recorded under `serial` (same count, within two hours). Its units are usable
 * again, or expired when the validity has ended in the meantime.
 */
export function reverseAdmission(order: OrderSnapshot, serial: string, k: number, now: number): OrderResult {
  assertInstant(now);
  const index = order.writeOffs.findIndex((w) => w.serial === serial);
  if (index < 0) return rejected('WRITE_OFF_NOT_FOUND', `no write-off ${serial} on this order`);
  const allowed = canReverseWriteOff(order.writeOffs[index]!, k, now);
  if (!allowed.ok) return allowed;
  return restoreWriteOff(order, index, now);
}

/**
 * Undo an admission that was never kept: Taobao refused its consume, or its outcome stayed unknown and it was
 * reversed at Taobao. Unlike a gate's reversal there is no two-hour window and no count to match — Taobao holds
 * no consume for it. Units go back to available, or to expired when the validity has ended meanwhile.
 */
export function undoAdmission(order: OrderSnapshot, serial: string, now: number): OrderResult {
  assertInstant(now);
  const index = order.writeOffs.findIndex((w) => w.serial === serial);
  if (index < 0) return rejected('WRITE_OFF_NOT_FOUND', `no write-off ${serial} on this order`);
  if (order.writeOffs[index]!.reversedAt !== null) return rejected('ALREADY_REVERSED', `write-off ${serial} was already reversed`);
  return restoreWriteOff(order, index, now);
}

function restoreWriteOff(order: OrderSnapshot, index: number, now: number): OrderResult {
  const writeOff = order.writeOffs[index]!;
  const to = hasValidityEnded(order.validity, now) ? 'expired' : 'available';
  const writeOffs = order.writeOffs.map((w, i) => (i === index ? Object.freeze({ ...w, reversedAt: now }) : w));
  return applied(order, OrderEvent.ConsumeReversed, ledgers.reverseConsume(order.ledger, writeOff.count, to), {
    writeOffs: Object.freeze(writeOffs),
  });
}

export type RefundableReason = 'NOT_ISSUED' | 'REFUNDABLE' | 'NOTHING_UNUSED' | 'EXPIRED_REFUND_DEADLINE_PASSED';

export interface RefundableQuantity {
  /** Units a refund request may ask for right now: available plus expired while the grace is open. */
  readonly count: number;
  readonly fromAvailable: number;
  readonly fromExpired: number;
  /** Last instant (inclusive) expired units may still be refunded: validity end + 5 days. */
  readonly expiredRefundDeadline: number;
  /** Why the count is what it is; EXPIRED_REFUND_DEADLINE_PASSED when expired units no longer count. */
  readonly reason: RefundableReason;
}

export function refundableNow(order: OrderSnapshot, now: number): RefundableQuantity {
  assertInstant(now);
  const deadline = expiredRefundDeadline(order.validity);
  if (order.phase !== 'issued') {
    return { count: 0, fromAvailable: 0, fromExpired: 0, expiredRefundDeadline: deadline, reason: 'NOT_ISSUED' };
  }
  const { available, expired } = order.ledger;
  const expiredOpen = canRefundExpired(order.validity, now);
  const fromExpired = expiredOpen ? expired : 0;
  const count = available + fromExpired;
  const reason: RefundableReason =
    expired > 0 && !expiredOpen ? 'EXPIRED_REFUND_DEADLINE_PASSED' : count === 0 ? 'NOTHING_UNUSED' : 'REFUNDABLE';
  return { count, fromAvailable: available, fromExpired, expiredRefundDeadline: deadline, reason };
}

/**
 * Ask the supplier to refund k units: available units first, then expired ones while the five-day
 * grace is open. Above the refundable count -> EXCEEDS_REFUNDABLE with that count in `details`.
 */
export function requestRefund(order: OrderSnapshot, k: number, now: number): OrderResult {
  assertInstant(now);
  if (!isPositiveCount(k)) return rejected('NON_POSITIVE_COUNT', `count must be a positive integer, got ${k}`);
  const notIssued = rejectUnlessIssued(order);
  if (notIssued) return notIssued;
  const refundable = refundableNow(order, now);
  if (k > refundable.count) {
    return rejected('EXCEEDS_REFUNDABLE', `asked to refund ${k} but only ${refundable.count} refundable`, {
      refundable: refundable.count,
      expiredRefundDeadline: refundable.expiredRefundDeadline,
      why: refundable.reason,
    });
  }
  const fromAvailable = Math.min(k, order.ledger.available);
  const fromExpired = k - fromAvailable;
  let result: LedgerResult = ok(order.ledger);
  if (fromAvailable > 0) result = ledgers.requestRefund(order.ledger, fromAvailable, 'available');
  if (result.ok && fromExpired > 0) result = ledgers.requestRefund(result.value, fromExpired, 'expired');
  return applied(order, OrderEvent.RefundRequested, result);
}

/** The supplier's audit approved k pending units. */
export function approveRefund(order: OrderSnapshot, k: number): OrderResult {
  const notIssued = rejectUnlessIssued(order);
  if (notIssued) return notIssued;
  return applied(order, OrderEvent.RefundApproved, ledgers.approveRefund(order.ledger, k));
}

/** The supplier's audit rejected k pending units: usable again, or expired if validity has ended. */
export function rejectRefund(order: OrderSnapshot, k: number, now: number): OrderResult {
  assertInstant(now);
  const notIssued = rejectUnlessIssued(order);
  if (notIssued) return notIssued;
  const to = hasValidityEnded(order.validity, now) ? 'expired' : 'available';
  return applied(order, OrderEvent.RefundRejected, ledgers.rejectRefund(order.ledger, k, to));
}

/** The expiry sweep: after the end of validity every available unit expires. */
export function expire(order: OrderSnapshot, now: number): OrderResult {
  assertInstant(now);
  const notIssued = rejectUnlessIssued(order);
  if (notIssued) return notIssued;
  if (!hasValidityEnded(order.validity, now)) {
    return rejected('VALIDITY_NOT_ENDED', 'validity has not ended yet', { validUntil: order.validity.end });
  }
  return applied(order, OrderEvent.Expired, ledgers.expireAvailable(order.ledger));
}

/**
 * The seller extended the validity. Expired units become usable again when the new end is not yet
 * past; units under audit stay where they are (a rejection will return them to available).
 */
export function changeValidity(order: OrderSnapshot, next: ValidityWindow, now: number): OrderResult {
  assertInstant(now);
  if (order.phase === 'closed') return rejected('ORDER_CLOSED', 'the order was closed before it was issued');
  const checked = checkValidityChange(order.validity, next);
  if (!checked.ok) return checked;
  const validity = checked.value;
  const revive = order.phase === 'issued' && order.ledger.expired > 0 && !hasValidityEnded(validity, now);
  const ledger = revive ? ledgers.restoreExpired(order.ledger, order.ledger.expired) : ok(order.ledger);
  return applied(order, OrderEvent.ValidityChanged, ledger, { validity: Object.freeze(validity) });
}

// ---- helpers ----

function applied(
  order: OrderSnapshot,
  event: OrderEvent,
  ledger: LedgerResult,
  patch: Partial<Pick<OrderSnapshot, 'writeOffs' | 'validity'>> = {},
): OrderResult {
  if (!ledger.ok) return ledger;
  const state = transition(order.state, event, ledger.value);
  return ok(freeze({ ...order, ...patch, ledger: ledger.value, state, phase: phaseAfter(order.state, event) }));
}

function rejectUnlessIssued(order: OrderSnapshot): OrderResult | undefined {
  if (order.phase === 'issued') return undefined;
  if (order.phase === 'closed') return rejected('ORDER_CLOSED', 'the order was closed before it was issued');
  return rejected('NOT_ISSUED', 'the order has no codes yet');
}

function rejectUnlessIssuing(order: OrderSnapshot): OrderResult | undefined {
  if (order.phase === 'issuing') return undefined;
  if (order.phase === 'issued') return rejected('ALREADY_ISSUED', 'the codes were already issued');
  if (order.phase === 'closed') return rejected('ORDER_CLOSED', 'the order was closed before it was issued');
  return rejected('NOT_ISSUING', 'no issue is in progress');
}

function rejectUnlessPreIssue(order: OrderSnapshot): OrderResult | undefined {
  if (order.phase === 'issued') return rejected('ALREADY_ISSUED', 'the codes were already issued');
  if (order.phase === 'closed') return rejected('ORDER_CLOSED', 'the order was closed before it was issued');
  return undefined;
}

function assertInstant(now: number): void {
  if (!Number.isSafeInteger(now)) throw new InvalidDomainArgumentError(`an instant must be integer epoch ms, got ${now}`);
}

function freeze(order: OrderSnapshot): OrderSnapshot {
  return Object.freeze(order);
}
