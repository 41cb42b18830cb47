/**
 * The gate's decision, as pure functions over the order snapshot, the voucher and the device: may `count`
 * people enter on this code now, and if not, why. No I/O; the transaction that applies the decision lives in
 * admission-desk.ts.
 */
import type { CheckMethod, Ledger } from '../domain/model';
import { hasValidityEnded } from '../domain/validity-rules';
import type { OrderSnapshot } from '../domain/order';

/** Every answer a gate can get. The gRPC enum mirrors these (ADMISSION_RESULT_<reason>). */
export type AdmissionReason =
  | 'ADMITTED'
  | 'UNKNOWN_CODE'
  | 'NOT_YET_VALID'
  | 'EXPIRED'
  | 'USED_UP'
  | 'REFUNDED'
  | 'REFUND_PENDING'
  | 'WRONG_SCENIC_SPOT'
  | 'DEVICE_REVOKED'
  | 'METHOD_NOT_ALLOWED'
  | 'AMBIGUOUS_ID_CARD'
  | 'COUNT_TOO_LARGE'
  | 'NOT_ISSUED'
  | 'ORDER_CLOSED'
  | 'CODE_VOIDED'
  | 'NONCE_REUSED'
  | 'CONFLICT'
  | 'REVERSE_WINDOW_PASSED'
  | 'REVERSE_COUNT_MISMATCH'
  | 'ALREADY_REVERSED'
  | 'WRITE_OFF_NOT_FOUND';

/** Human text for the gate's display, in the business's words. */
export const ADMISSION_TEXT: Readonly<Record<AdmissionReason, string>> = {
  ADMITTED: 'Admitted',
  UNKNOWN_CODE: 'Unknown code',
  NOT_YET_VALID: 'Not valid yet',
  EXPIRED: 'Expired',
  USED_UP: 'Already used',
  REFUNDED: 'Refunded',
  REFUND_PENDING: 'A refund is pending for this ticket',
  WRONG_SCENIC_SPOT: 'This ticket is for another scenic spot',
  DEVICE_REVOKED: 'This gate device has been revoked',
  METHOD_NOT_ALLOWED: 'This check method is not allowed here',
  AMBIGUOUS_ID_CARD: 'Several tickets match this ID card: choose one',
  COUNT_TOO_LARGE: 'Fewer people left on this ticket than asked',
  NOT_ISSUED: 'The ticket is not issued yet',
  ORDER_CLOSED: 'The order was closed',
  CODE_VOIDED: 'This code was replaced or voided',
  NONCE_REUSED: 'This request id was already used for another admission',
  CONFLICT: 'Could not be honoured; recorded for operators',
  REVERSE_WINDOW_PASSED: 'Older than two hours: cannot be reversed',
  REVERSE_COUNT_MISMATCH: 'A reversal must be for the same count as the admission',
  ALREADY_REVERSED: 'Already reversed',
  WRITE_OFF_NOT_FOUND: 'No such admission',
};

/** What a device is allowed to do. */
export interface DeviceScope {
  readonly scenicSpotCode: string;
  readonly allowedCheckMethods: readonly CheckMethod[];
}

/** Where the product of an order may be admitted (from the product mapping). */
export interface ProductScope {
  readonly scenicSpotCode: string;
  readonly checkMethods: readonly CheckMethod[];
}

export interface VoucherState {
  readonly remaining: number;
  readonly status: 'active' | 'void';
}

export interface AdmissionQuestion {
  readonly device: DeviceScope;
  readonly method: CheckMethod;
  /** Undefined when the order's product is not mapped: no scenic spot admits it. */
  readonly product: ProductScope | undefined;
  readonly order: Pick<OrderSnapshot, 'phase' | 'ledger' | 'validity'>;
  readonly voucher: VoucherState;
  readonly count: number;
  /** The instant of the admission (the original time for an offline upload). */
  readonly at: number;
}

export type AdmissionDecision =
  | { readonly admit: true; readonly usable: number }
  | { readonly admit: false; readonly reason: Exclude<AdmissionReason, 'ADMITTED'>; readonly usable: number };

/**
 * Decides, in this order: device method, scenic spot, product method, order phase, validity, units. The units a
 * code can still admit are the fewer of the voucher's remaining and the order's available units.
 */
export function decideAdmission(q: AdmissionQuestion): AdmissionDecision {
  const usable = q.voucher.status === 'active' && q.order.phase === 'issued' ? Math.min(q.voucher.remaining, q.order.ledger.available) : 0;
  const no = (reason: Exclude<AdmissionReason, 'ADMITTED'>): AdmissionDecision => ({ admit: false, reason, usable });
  if (!q.device.allowedCheckMethods.includes(q.method)) return no('METHOD_NOT_ALLOWED');
  if (!q.product || q.product.scenicSpotCode !== q.device.scenicSpotCode) return no('WRONG_SCENIC_SPOT');
  if (!q.product.checkMethods.includes(q.method)) return no('METHOD_NOT_ALLOWED');
  if (q.order.phase === 'closed') return no('ORDER_CLOSED');
  if (q.order.phase !== 'issued') return no('NOT_ISSUED');
  if (q.at < q.order.validity.start) return no('NOT_YET_VALID');
  if (hasValidityEnded(q.order.validity, q.at)) return no('EXPIRED');
  if (q.voucher.status === 'void') return no('CODE_VOIDED');
  if (usable >= q.count) return { admit: true, usable };
  if (usable > 0) return no('COUNT_TOO_LARGE');
  return no(whyNothingUsable(q.order.ledger, q.voucher.remaining));
}

/** Nothing left on the code: say where the units went. */
function whyNothingUsable(l: Ledger, voucherRemaining: number): 'USED_UP' | 'REFUNDED' | 'REFUND_PENDING' | 'EXPIRED' {
  if (l.available > 0 || voucherRemaining === 0) {
    // Other codes of the order still have units, or this code's units were all admitted.
    if (l.refundPending > 0 && l.available === 0) return 'REFUND_PENDING';
    return 'USED_UP';
  }
  if (l.refundPending > 0) return 'REFUND_PENDING';
  if (l.refunded > 0 && l.consumed === 0) return 'REFUNDED';
  if (l.expired > 0 && l.consumed === 0) return 'EXPIRED';
  if (l.refunded > 0 && l.refunded >= l.consumed) return 'REFUNDED';
  return 'USED_UP';
}

/** Bounds on what a gate may send. */
export const GATE_LIMITS = {
  maxCount: 999,
  maxCodeLength: 64,
  maxQrLength: 1024,
  maxIdCardLength: 32,
  maxNonceLength: 64,
  maxReasonLength: 255,
  maxOfflineBatch: 500,
  /** An offline admission time may be at most this far in the future (gate clock skew). */
  maxFutureSkewMs: 5 * 60_000,
} as const;

export const NONCE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * The voucher code a QR payload stands for: the payload itself when it is a bare code, else a `code` /
 * `verify_code` / `c` query parameter or the last path segment of a URL. The caller still checks that the
 * stored QR payload (when there is one) is exactly what was scanned.
 */
export function codeFromQrPayload(payload: string): string | undefined {
  const text = payload.trim();
  if (/^[A-Za-z0-9_-]{1,64}$/.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  for (const key of ['code', 'verify_code', 'c']) {
    const v = url.searchParams.get(key);
    if (v && /^[A-Za-z0-9_-]{1,64}$/.test(v)) return v;
  }
  const last = url.pathname.split('/').filter(Boolean).pop();
  return last && /^[A-Za-z0-9_-]{1,64}$/.test(last) ? last : undefined;
}
