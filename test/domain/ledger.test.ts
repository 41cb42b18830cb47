import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidDomainArgumentError, LedgerInvariantError } from '../../src/domain/domain-errors';
import * as L from '../../src/domain/ledger';
import type { Ledger } from '../../src/domain/model';

const ledger = (p: Partial<Ledger> & { purchased: number }): Ledger => ({
  available: 0, consumed: 0, refundPending: 0, refunded: 0, expired: 0, ...p,
});

function value(r: L.LedgerResult): Ledger {
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`);
  return r.value;
}

describe('ledger', () => {
  it('starts with every purchased unit available', () => {
    assert.deepEqual({ ...L.newLedger(3) }, ledger({ purchased: 3, available: 3 }));
  });

  it('refuses to open a ledger for a non-positive or fractional purchase', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => L.newLedger(bad), InvalidDomainArgumentError);
    }
  });

  it('assertLedger throws on a broken equation, a negative or a fractional bucket', () => {
    assert.throws(() => L.assertLedger(ledger({ purchased: 3, available: 2 })), LedgerInvariantError);
    assert.throws(() => L.assertLedger(ledger({ purchased: 1, available: 2, consumed: -1 })), LedgerInvariantError);
    assert.throws(() => L.assertLedger(ledger({ purchased: 1, available: 0.5, consumed: 0.5 })), LedgerInvariantError);
    assert.doesNotThrow(() => L.assertLedger(ledger({ purchased: 5, available: 1, consumed: 1, refundPending: 1, refunded: 1, expired: 1 })));
  });

  it('consumes k of n leaving n-k usable, and reverses it', () => {
    const l = L.newLedger(5);
    const after = value(L.consume(l, 2));
    assert.equal(after.available, 3);
    assert.equal(after.consumed, 2);
    assert.equal(l.available, 5, 'input untouched');
    const back = value(L.reverseConsume(after, 2));
    assert.ok(L.sameLedger(back, l));
    const toExpired = value(L.reverseConsume(after, 1, 'expired'));
    assert.deepEqual([toExpired.consumed, toExpired.expired, toExpired.available], [1, 1, 3]);
  });

  it('rejects each move that would drive a bucket negative, with the right reason', () => {
    const l = ledger({ purchased: 4, available: 1, consumed: 1, refundPending: 1, expired: 1 });
    const cases: Array<[L.LedgerResult, L.LedgerRejection]> = [
      [L.consume(l, 2), 'NOT_ENOUGH_AVAILABLE'],
      [L.reverseConsume(l, 2), 'NOT_ENOUGH_CONSUMED'],
      [L.requestRefund(l, 2, 'available'), 'NOT_ENOUGH_AVAILABLE'],
      [L.requestRefund(l, 2, 'expired'), 'NOT_ENOUGH_EXPIRED'],
      [L.approveRefund(l, 2), 'NOT_ENOUGH_PENDING'],
      [L.rejectRefund(l, 2, 'available'), 'NOT_ENOUGH_PENDING'],
      [L.restoreExpired(l, 2), 'NOT_ENOUGH_EXPIRED'],
      [L.expireAvailable(ledger({ purchased: 1, consumed: 1 })), 'NOT_ENOUGH_AVAILABLE'],
    ];
    for (const [r, reason] of cases) {
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.reason, reason);
    }
  });

  it('rejects zero, negative and fractional counts', () => {
    const l = L.newLedger(3);
    for (const k of [0, -1, 1.5, Number.NaN, Infinity]) {
      const r = L.consume(l, k);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.reason, 'NON_POSITIVE_COUNT');
    }
  });

  it('runs a refund through request, approval and rejection', () => {
    let l = L.newLedger(4);
    l = value(L.requestRefund(l, 3, 'available'));
    assert.deepEqual([l.available, l.refundPending], [1, 3]);
    l = value(L.approveRefund(l, 2));
    assert.deepEqual([l.refundPending, l.refunded], [1, 2]);
    l = value(L.rejectRefund(l, 1, 'expired'));
    assert.deepEqual([l.refundPending, l.expired, l.available], [0, 1, 1]);
  });

  it('expires every available unit at once, and a validity extension can restore them', () => {
    const l = value(L.consume(L.newLedger(3), 1));
    const expired = value(L.expireAvailable(l));
    assert.deepEqual([expired.available, expired.expired, expired.consumed], [0, 2, 1]);
    const revived = value(L.restoreExpired(expired, 2));
    assert.ok(L.sameLedger(revived, l));
  });

  it('refuses to operate on a ledger that is already broken', () => {
    assert.throws(() => L.consume(ledger({ purchased: 2, available: 1 }), 1), LedgerInvariantError);
  });

  it('returns frozen ledgers', () => {
    const l = value(L.consume(L.newLedger(2), 1));
    assert.ok(Object.isFrozen(l));
  });
});
