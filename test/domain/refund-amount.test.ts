import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CODE_FEE_FEN, buyerRefundFen } from '../../src/domain/refund-amount';

const amount = (...args: Parameters<typeof buyerRefundFen>) => {
  const r = buyerRefundFen(...args);
  return r.ok ? r.value : r.reason;
};

describe('buyerRefundFen', () => {
  it('is units x price x ratio less the 1-yuan code fee', () => {
    assert.equal(amount(2, 5000, 10000), 9900); // 2 x 50 yuan, 100%
    assert.equal(amount(3, 12000, 8000), 28700); // 3 x 120 yuan x 80% = 288 yuan - 1
  });

  it('floors fractional fen before taking the fee', () => {
    assert.equal(amount(1, 333, 5000), 66); // 166.5 -> 166 - 100
    assert.equal(amount(1, 199, 9999), 98); // 198.98 -> 198 - 100
  });

  it('never goes below 0 (and is 0 at exactly the fee)', () => {
    assert.equal(amount(1, 100, 10000), 0);
    assert.equal(amount(1, 101, 10000), 1);
    assert.equal(amount(1, 99, 10000), 0);
    assert.equal(amount(0, 5000, 10000), 0);
    assert.equal(amount(5, 5000, 0), 0);
  });

  it('rejects a ratio above 100% or below 0, and fractional basis points', () => {
    assert.equal(amount(1, 5000, 10001), 'RATIO_OUT_OF_RANGE');
    assert.equal(amount(1, 5000, -1), 'RATIO_OUT_OF_RANGE');
    assert.equal(amount(1, 5000, 50.5), 'RATIO_OUT_OF_RANGE');
  });

  it('rejects negative or fractional units and prices', () => {
    assert.equal(amount(-1, 5000, 10000), 'INVALID_UNITS');
    assert.equal(amount(1.5, 5000, 10000), 'INVALID_UNITS');
    assert.equal(amount(1, -5000, 10000), 'INVALID_UNIT_PRICE');
    assert.equal(amount(1, 50.5, 10000), 'INVALID_UNIT_PRICE');
  });

  it('rejects a ratio below the category minimum', () => {
    assert.equal(amount(1, 5000, 6999, { categoryMinimumBasisPoints: 7000 }), 'RATIO_BELOW_CATEGORY_MINIMUM');
    assert.equal(amount(1, 5000, 7000, { categoryMinimumBasisPoints: 7000 }), 3400);
  });

  it('keeps exact fen for huge amounts and refuses what integer fen cannot hold', () => {
    assert.equal(amount(1_000_000, 9_000_000_001, 10000), 9_000_000_001_000_000 - CODE_FEE_FEN);
    assert.equal(amount(1_000_000_000, 9_000_000_000, 10000), 'AMOUNT_TOO_LARGE');
  });

  it('is an integer in [0, units x price], monotone in units and ratio (property)', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(1_000_000), fc.nat(10000), (units, price, ratio) => {
        const a = buyerRefundFen(units, price, ratio);
        assert.ok(a.ok);
        if (!a.ok) return;
        assert.ok(Number.isInteger(a.value) && a.value >= 0 && a.value <= units * price);
        assert.equal(a.value, Math.max(0, Math.floor((units * price * ratio) / 10000) - 100));
        const more = buyerRefundFen(units + 1, price, ratio);
        assert.ok(more.ok && more.value >= a.value);
        const higher = buyerRefundFen(units, price, Math.min(10000, ratio + 1));
        assert.ok(higher.ok && higher.value >= a.value);
      }),
      { numRuns: 500 },
    );
  });
});
