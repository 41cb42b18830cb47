import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrderState, type ValidityWindow } from '../../src/domain/model';
import * as O from '../../src/domain/order';
import type { OrderResult, OrderSnapshot } from '../../src/domain/order';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const start = Date.UTC(2025, 5, 1, 16); // 2025-06-02 00:00 GMT+8
const validity: ValidityWindow = { start, end: start + 3 * DAY - 1 };
const S = OrderState;

function must(r: OrderResult | ReturnType<typeof O.newOrder>): OrderSnapshot {
  if (!r.ok) assert.fail(`expected success, got ${r.reason}: ${r.message}`);
  return r.value;
}

function reasonOf(r: OrderResult): string {
  return r.ok ? 'OK' : r.reason;
}

function issuedOrder(purchased = 4): OrderSnapshot {
  return must(O.markIssued(must(O.startIssue(must(O.newOrder(purchased, validity))))));
}

describe('order issue lifecycle', () => {
  it('goes RECEIVED -> ISSUING -> ISSUED', () => {
    const received = must(O.newOrder(2, validity));
    assert.equal(received.state, S.Received);
    const issuing = must(O.startIssue(received));
    assert.equal(issuing.state, S.Issuing);
    const issued = must(O.markIssued(issuing));
    assert.equal(issued.state, S.Issued);
    assert.equal(issued.ledger.available, 2);
  });

  it('rejects a new order with no units or a malformed window', () => {
    assert.equal(reasonOf(O.newOrder(0, validity) as OrderResult), 'NON_POSITIVE_COUNT');
    assert.equal(reasonOf(O.newOrder(1, { start: 10, end: 9 }) as OrderResult), 'VALIDITY_MALFORMED');
  });

  it('can fail, be replayed, or be closed without ever being issued', () => {
    const failed = must(O.markIssueFailed(must(O.startIssue(must(O.newOrder(2, validity))))));
    assert.equal(failed.state, S.IssueFailed);
    assert.equal(must(O.startIssue(failed)).state, S.Issuing);
    const closed = must(O.close(failed));
    assert.equal(closed.state, S.Closed);
    assert.equal(reasonOf(O.admit(closed, 1, start, 's1')), 'ORDER_CLOSED');
    assert.equal(reasonOf(O.startIssue(closed)), 'ORDER_CLOSED');
    assert.equal(reasonOf(O.changeValidity(closed, { start, end: validity.end + DAY }, start)), 'ORDER_CLOSED');
  });

  it('refuses out-of-order issue steps with a reason', () => {
    const received = must(O.newOrder(2, validity));
    assert.equal(reasonOf(O.markIssued(received)), 'NOT_ISSUING');
    const issuing = must(O.startIssue(received));
    assert.equal(reasonOf(O.startIssue(issuing)), 'ISSUE_IN_PROGRESS');
    assert.equal(reasonOf(O.close(issuing)), 'ISSUE_IN_PROGRESS');
    const issued = must(O.markIssued(issuing));
    assert.equal(reasonOf(O.markIssued(issued)), 'ALREADY_ISSUED');
    assert.equal(reasonOf(O.close(issued)), 'ALREADY_ISSUED');
    assert.equal(reasonOf(O.admit(received, 1, start, 's1')), 'NOT_ISSUED');
  });
});

describe('admission', () => {
  it('consumes k of n inside validity and records the write-off', () => {
    const o = must(O.admit(issuedOrder(3), 2, start + HOUR, 'wo_1'));
    assert.equal(o.state, S.PartiallyConsumed);
    assert.deepEqual([o.ledger.available, o.ledger.consumed], [1, 2]);
    assert.deepEqual(o.writeOffs, [{ serial: 'wo_1', count: 2, admittedAt: start + HOUR, reversedAt: null }]);
    assert.equal(must(O.admit(o, 1, start + 2 * HOUR, 'wo_2')).state, S.Consumed);
  });

  it('refuses before validity, after it, beyond what is available and a replayed serial', () => {
    const o = issuedOrder(2);
    assert.equal(reasonOf(O.admit(o, 1, start - 1, 'a')), 'NOT_YET_VALID');
    assert.equal(reasonOf(O.admit(o, 1, validity.end + 1, 'a')), 'EXPIRED');
    assert.equal(reasonOf(O.admit(o, 1, validity.end, 'a')), 'OK');
    assert.equal(reasonOf(O.admit(o, 3, start, 'a')), 'NOT_ENOUGH_AVAILABLE');
    assert.equal(reasonOf(O.admit(o, 0, start, 'a')), 'NON_POSITIVE_COUNT');
    const once = must(O.admit(o, 1, start, 'a'));
    assert.equal(reasonOf(O.admit(once, 1, start, 'a')), 'DUPLICATE_SERIAL');
  });
});

describe('write-off reversal', () => {
  const admitted = must(O.admit(issuedOrder(3), 2, start + HOUR, 'wo_1'));

  it('is allowed at 1h59 and makes the units usable again', () => {
    const o = must(O.reverseAdmission(admitted, 'wo_1', 2, start + HOUR + 119 * MIN));
    assert.equal(o.state, S.Issued);
    assert.equal(o.ledger.available, 3);
    assert.equal(o.writeOffs[0]!.reversedAt, start + HOUR + 119 * MIN);
    assert.equal(reasonOf(O.reverseAdmission(o, 'wo_1', 2, start + 2 * HOUR)), 'ALREADY_REVERSED');
  });

  it('is refused at 2h01, with another count, or for an unknown serial', () => {
    assert.equal(reasonOf(O.reverseAdmission(admitted, 'wo_1', 2, start + HOUR + 121 * MIN)), 'REVERSE_WINDOW_PASSED');
    assert.equal(reasonOf(O.reverseAdmission(admitted, 'wo_1', 1, start + HOUR + MIN)), 'COUNT_MISMATCH');
    assert.equal(reasonOf(O.reverseAdmission(admitted, 'nope', 2, start + HOUR + MIN)), 'WRITE_OFF_NOT_FOUND');
  });

  it('sends the units to expired when validity ended in the meantime', () => {
    const late = must(O.admit(issuedOrder(2), 2, validity.end - HOUR, 'late'));
    assert.equal(late.state, S.Consumed);
    const o = must(O.reverseAdmission(late, 'late', 2, validity.end + HOUR));
    assert.equal(o.state, S.Expired);
    assert.deepEqual([o.ledger.available, o.ledger.expired], [0, 2]);
  });
});

describe('refunds', () => {
  it('takes available units, waits for the audit, then refunds', () => {
    const pending = must(O.requestRefund(issuedOrder(3), 2, start));
    assert.equal(pending.state, S.RefundPendingAudit);
    assert.deepEqual([pending.ledger.available, pending.ledger.refundPending], [1, 2]);
    const approved = must(O.approveRefund(pending, 2));
    assert.equal(approved.state, S.PartiallyRefunded);
    const all = must(O.approveRefund(must(O.requestRefund(approved, 1, start)), 1));
    assert.equal(all.state, S.Refunded);
  });

  it('refuses more than is refundable and says how many are', () => {
    const o = must(O.admit(issuedOrder(3), 2, start, 'a'));
    const r = O.requestRefund(o, 2, start);
    assert.equal(reasonOf(r), 'EXCEEDS_REFUNDABLE');
    if (!r.ok) assert.equal(r.details?.refundable, 1);
    assert.equal(reasonOf(O.approveRefund(o, 1)), 'NOT_ENOUGH_PENDING');
  });

  it('puts rejected units back to available, or to expired once validity has ended', () => {
    const pending = must(O.requestRefund(issuedOrder(2), 2, start));
    const back = must(O.rejectRefund(pending, 2, start + HOUR));
    assert.equal(back.state, S.Issued);
    assert.equal(back.ledger.available, 2);
    const late = must(O.rejectRefund(pending, 2, validity.end + 1));
    assert.equal(late.state, S.Expired);
    assert.equal(late.ledger.expired, 2);
  });

  it('refunds expired units on day 4 after the end, not on day 6', () => {
    const expired = must(O.expire(issuedOrder(2), validity.end + 1));
    assert.equal(expired.state, S.Expired);
    const day4 = O.refundableNow(expired, validity.end + 4 * DAY);
    assert.deepEqual(day4, {
      count: 2, fromAvailable: 0, fromExpired: 2, expiredRefundDeadline: validity.end + 5 * DAY, reason: 'REFUNDABLE',
    });
    assert.equal(must(O.requestRefund(expired, 2, validity.end + 4 * DAY)).state, S.RefundPendingAudit);
    const day6 = O.requestRefund(expired, 1, validity.end + 6 * DAY);
    assert.equal(reasonOf(day6), 'EXCEEDS_REFUNDABLE');
    if (!day6.ok) assert.equal(day6.details?.refundable, 0);
    assert.equal(O.refundableNow(expired, validity.end + 6 * DAY).reason, 'EXPIRED_REFUND_DEADLINE_PASSED');
  });

  it('takes available units before expired ones', () => {
    // One unit rejected back to expired after the end, one still available (sweep not run yet).
    const pending = must(O.requestRefund(issuedOrder(2), 1, start));
    const mixed = must(O.rejectRefund(pending, 1, validity.end + 1));
    assert.deepEqual([mixed.ledger.available, mixed.ledger.expired], [1, 1]);
    const one = must(O.requestRefund(mixed, 1, validity.end + 2));
    assert.deepEqual([one.ledger.available, one.ledger.expired, one.ledger.refundPending], [0, 1, 1]);
  });

  it('reports NOT_ISSUED and NOTHING_UNUSED', () => {
    assert.equal(O.refundableNow(must(O.newOrder(1, validity)), start).reason, 'NOT_ISSUED');
    const used = must(O.admit(issuedOrder(1), 1, start, 'a'));
    assert.equal(O.refundableNow(used, start).reason, 'NOTHING_UNUSED');
  });
});

describe('expiry and validity changes', () => {
  it('expires only after the end of validity, and only what is available', () => {
    const o = must(O.admit(issuedOrder(3), 1, start, 'a'));
    assert.equal(reasonOf(O.expire(o, validity.end)), 'VALIDITY_NOT_ENDED');
    const expired = must(O.expire(o, validity.end + 1));
    assert.equal(expired.state, S.Expired);
    assert.deepEqual([expired.ledger.consumed, expired.ledger.expired], [1, 2]);
    assert.equal(reasonOf(O.expire(expired, validity.end + 2)), 'NOT_ENOUGH_AVAILABLE');
  });

  it('refuses shortening and accepts extension', () => {
    const o = issuedOrder(1);
    assert.equal(reasonOf(O.changeValidity(o, { start, end: validity.end - 1 }, start)), 'VALIDITY_SHORTENED');
    assert.equal(reasonOf(O.changeValidity(o, { start: start + 1, end: validity.end }, start)), 'VALIDITY_SHORTENED');
    const longer = must(O.changeValidity(o, { start, end: validity.end + DAY }, start));
    assert.equal(longer.validity.end, validity.end + DAY);
    assert.equal(longer.state, S.Issued);
  });

  it('revives expired units when the extension reaches past now, not otherwise', () => {
    const expired = must(O.expire(issuedOrder(2), validity.end + HOUR));
    const now = validity.end + 2 * HOUR;
    const stillPast = must(O.changeValidity(expired, { start, end: validity.end + HOUR }, now));
    assert.equal(stillPast.state, S.Expired);
    const revived = must(O.changeValidity(expired, { start, end: validity.end + DAY }, now));
    assert.equal(revived.state, S.Issued);
    assert.equal(revived.ledger.available, 2);
    assert.equal(reasonOf(O.admit(revived, 1, now, 'a')), 'OK');
  });
});

describe('snapshots', () => {
  it('are frozen and never changed by an operation, accepted or rejected', () => {
    const o = issuedOrder(2);
    const before = JSON.stringify(o);
    assert.ok(Object.isFrozen(o) && Object.isFrozen(o.ledger));
    O.admit(o, 1, start, 'a');
    O.admit(o, 5, start, 'b');
    O.requestRefund(o, 2, start);
    assert.equal(JSON.stringify(o), before);
  });
});

describe('undoAdmission (an admission Taobao never kept)', () => {
  const HOUR = 3_600_000;
  const start = Date.UTC(2026, 0, 1);
  const validity: ValidityWindow = { start, end: start + 10 * 24 * HOUR };
  const issued = (): OrderSnapshot => {
    let o = O.newOrder(3, validity);
    assert.ok(o.ok);
    for (const step of [O.startIssue, O.markIssued]) {
      const r: OrderResult = step(o.value);
      assert.ok(r.ok);
      o = r;
    }
    return o.value;
  };

  it('restores the units with no two-hour window, once', () => {
    const admitted = O.admit(issued(), 2, start + HOUR, 'S1');
    assert.ok(admitted.ok);
    const later = start + 5 * 24 * HOUR; // far past the reversal window
    assert.equal(O.reverseAdmission(admitted.value, 'S1', 2, later).ok, false, 'a gate reversal is refused by now');
    const undone = O.undoAdmission(admitted.value, 'S1', later);
    assert.ok(undone.ok);
    assert.equal(undone.value.ledger.available, 3);
    assert.equal(undone.value.ledger.consumed, 0);
    assert.equal(undone.value.state, OrderState.Issued);
    const again = O.undoAdmission(undone.value, 'S1', later + 1);
    assert.equal(again.ok, false);
    assert.equal(!again.ok && again.reason, 'ALREADY_REVERSED');
    const missing = O.undoAdmission(undone.value, 'NOPE', later);
    assert.equal(!missing.ok && missing.reason, 'WRITE_OFF_NOT_FOUND');
  });

  it('sends the units to expired when the validity has ended meanwhile', () => {
    const admitted = O.admit(issued(), 1, start + HOUR, 'S2');
    assert.ok(admitted.ok);
    const undone = O.undoAdmission(admitted.value, 'S2', validity.end + HOUR);
    assert.ok(undone.ok);
    assert.equal(undone.value.ledger.expired, 1);
    assert.equal(undone.value.ledger.available, 2);
  });
});
