/**
 * Business outcomes. A rejection (the buyer asked for more than is left, the window has passed) is an
 * ordinary answer and is returned; a programming fault or an illegal state transition is thrown.
 */

export interface Accepted<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Rejected<R extends string = string> {
  readonly ok: false;
  readonly reason: R;
  readonly message: string;
  /** Optional figures the caller may pass on (e.g. the refundable count the supplier would answer). */
  readonly details?: Readonly<Record<string, number | string>>;
}

export type Result<T, R extends string = string> = Accepted<T> | Rejected<R>;

export function ok<T>(value: T): Accepted<T> {
  return { ok: true, value };
}

export function rejected<R extends string>(
  reason: R,
  message: string,
  details?: Readonly<Record<string, number | string>>,
): Rejected<R> {
  return details === undefined ? { ok: false, reason, message } : { ok: false, reason, message, details };
}

/** True for a positive safe integer: the only thing a unit count may be. */
export function isPositiveCount(k: number): boolean {
  return Number.isSafeInteger(k) && k > 0;
}
