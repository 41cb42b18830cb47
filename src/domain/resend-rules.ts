/**
 * A buyer may ask for the codes to be resent at most once per calendar day, Taobao's day (GMT+8),
 * whatever the UTC date is.
 */
import { ok, rejected, type Result } from './result';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Taobao's business clock is China Standard Time, no daylight saving. */
export const TAOBAO_UTC_OFFSET_MS = 8 * 60 * 60 * 1000;

/** Day number (days since 1970-01-01 in GMT+8) of an instant. */
export function taobaoDayOf(instant: number): number {
  return Math.floor((instant + TAOBAO_UTC_OFFSET_MS) / DAY_MS);
}

/** First instant of the GMT+8 day after the one holding `instant`. */
export function nextTaobaoDayStart(instant: number): number {
  return (taobaoDayOf(instant) + 1) * DAY_MS - TAOBAO_UTC_OFFSET_MS;
}

export type ResendRejection = 'ALREADY_RESENT_TODAY';

export function canResend(previousResendAts: readonly number[], now: number): Result<true, ResendRejection> {
  const today = taobaoDayOf(now);
  if (previousResendAts.some((at) => taobaoDayOf(at) === today)) {
    const nextAllowedAt = nextTaobaoDayStart(now);
    return rejected('ALREADY_RESENT_TODAY', `codes were already resent today; next resend from ${new Date(nextAllowedAt).toISOString()}`, {
      nextAllowedAt,
    });
  }
  return ok(true);
}
