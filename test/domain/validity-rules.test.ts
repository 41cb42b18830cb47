import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EXPIRED_REFUND_GRACE_MS,
  canRefundExpired,
  changeValidity,
  expiredRefundDeadline,
  hasValidityEnded,
  isWithinValidity,
} from '../../src/domain/validity-rules';

const DAY = 86_400_000;
const start = Date.UTC(2025, 5, 1, 16, 0, 0); // 2025-06-02 00:00 GMT+8
const end = start + 10 * DAY - 1; // inclusive last millisecond of the 10th day
const window = { start, end };

describe('validity window', () => {
  it('includes both ends', () => {
    assert.equal(isWithinValidity(window, start - 1), false);
    assert.equal(isWithinValidity(window, start), true);
    assert.equal(isWithinValidity(window, end), true);
    assert.equal(isWithinValidity(window, end + 1), false);
    assert.equal(hasValidityEnded(window, end), false);
    assert.equal(hasValidityEnded(window, end + 1), true);
  });
});

describe('changeValidity', () => {
  const reason = (r: ReturnType<typeof changeValidity>) => (r.ok ? 'OK' : r.reason);

  it('accepts an extension of the end, an earlier start, and the same window again', () => {
    assert.deepEqual(changeValidity(window, { start, end: end + DAY }), { ok: true, value: { start, end: end + DAY } });
    assert.equal(reason(changeValidity(window, { start: start - DAY, end: end + DAY })), 'OK');
    assert.equal(reason(changeValidity(window, window)), 'OK');
  });

  it('refuses shortening: an earlier end or a later start', () => {
    assert.equal(reason(changeValidity(window, { start, end: end - 1 })), 'VALIDITY_SHORTENED');
    assert.equal(reason(changeValidity(window, { start: start + 1, end: end + DAY })), 'VALIDITY_SHORTENED');
  });

  it('refuses a malformed window before anything else', () => {
    assert.equal(reason(changeValidity(window, { start: end + DAY, end: end + 1 })), 'VALIDITY_MALFORMED');
    assert.equal(reason(changeValidity(window, { start: Number.NaN, end: end + 1 })), 'VALIDITY_MALFORMED');
  });
});

describe('expired refunds', () => {
  it('have a deadline five days after the end', () => {
    assert.equal(expiredRefundDeadline(window), end + 5 * DAY);
    assert.equal(EXPIRED_REFUND_GRACE_MS, 5 * DAY);
  });

  it('are allowed on day 4 and at the deadline itself, refused on day 6 and just after it', () => {
    assert.equal(canRefundExpired(window, end + 4 * DAY), true);
    assert.equal(canRefundExpired(window, end + 5 * DAY), true);
    assert.equal(canRefundExpired(window, end + 5 * DAY + 1), false);
    assert.equal(canRefundExpired(window, end + 6 * DAY), false);
  });

  it('follow an extended end', () => {
    const extended = changeValidity(window, { start, end: end + 3 * DAY });
    assert.ok(extended.ok);
    if (extended.ok) assert.equal(canRefundExpired(extended.value, end + 6 * DAY), true);
  });
});
