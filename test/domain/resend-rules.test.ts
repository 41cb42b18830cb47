import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canResend, nextTaobaoDayStart, taobaoDayOf } from '../../src/domain/resend-rules';

const reason = (r: ReturnType<typeof canResend>) => (r.ok ? 'OK' : r.reason);

describe('buyer resend, at most once per GMT+8 day', () => {
  it('allows the first resend', () => {
    assert.equal(reason(canResend([], Date.UTC(2025, 0, 10, 3))), 'OK');
  });

  it('refuses a second resend the same GMT+8 day, even across a UTC date change', () => {
    const first = Date.UTC(2025, 0, 9, 17, 0); // 2025-01-10 01:00 GMT+8 (UTC still 01-09)
    const second = Date.UTC(2025, 0, 10, 15, 59); // 2025-01-10 23:59 GMT+8 (UTC 01-10)
    assert.equal(reason(canResend([first], second)), 'ALREADY_RESENT_TODAY');
  });

  it('allows the next GMT+8 day even when the UTC day is the same', () => {
    const first = Date.UTC(2025, 0, 10, 2, 0); // 2025-01-10 10:00 GMT+8
    const next = Date.UTC(2025, 0, 10, 16, 0); // 2025-01-11 00:00 GMT+8, still 2025-01-10 UTC
    assert.equal(new Date(first).getUTCDate(), new Date(next).getUTCDate());
    assert.equal(reason(canResend([first], next)), 'OK');
    assert.equal(reason(canResend([first], next - 1)), 'ALREADY_RESENT_TODAY');
  });

  it('tells when the next resend is allowed: the next GMT+8 midnight', () => {
    const now = Date.UTC(2025, 0, 10, 2, 0);
    const r = canResend([now - 60_000], now);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.details?.nextAllowedAt, Date.UTC(2025, 0, 10, 16, 0));
    assert.equal(nextTaobaoDayStart(now), Date.UTC(2025, 0, 10, 16, 0));
  });

  it('counts days in GMT+8', () => {
    assert.equal(taobaoDayOf(Date.UTC(2025, 0, 10, 15, 59, 59, 999)) + 1, taobaoDayOf(Date.UTC(2025, 0, 10, 16)));
  });

  it('ignores resends on earlier days', () => {
    const now = Date.UTC(2025, 0, 10, 2, 0);
    assert.equal(reason(canResend([now - 86_400_000, now - 2 * 86_400_000], now)), 'OK');
  });
});
