/**
 * The vocabulary every part of the gateway shares. Pure types, no I/O.
 * Money is always integer fen; instants are epoch milliseconds (UTC); the business clock is GMT+8.
 */

/** Our own order state. Outside states (Taobao, suppliers) are mapped onto these, never the reverse. */
export enum OrderState {
  Received = 'RECEIVED',
  Issuing = 'ISSUING',
  Issued = 'ISSUED',
  PartiallyConsumed = 'PARTIALLY_CONSUMED',
  Consumed = 'CONSUMED',
  RefundPendingAudit = 'REFUND_PENDING_AUDIT',
  PartiallyRefunded = 'PARTIALLY_REFUNDED',
  Refunded = 'REFUNDED',
  Expired = 'EXPIRED',
  IssueFailed = 'ISSUE_FAILED',
  Closed = 'CLOSED',
}

export const ORDER_STATES: readonly OrderState[] = Object.values(OrderState);

/**
 * The per-order quantity ledger. Invariant, at every moment:
 *   purchased = available + consumed + refundPending + refunded + expired, and no bucket negative.
 */
export interface Ledger {
  readonly purchased: number;
  readonly available: number;
  readonly consumed: number;
  readonly refundPending: number;
  readonly refunded: number;
  readonly expired: number;
}

/** Validity window of an order's codes, epoch ms, both ends inclusive. */
export interface ValidityWindow {
  readonly start: number;
  readonly end: number;
}

/** How a visitor is checked at the gate. */
export enum CheckMethod {
  Code = 'CODE',
  Qr = 'QR',
  IdCard = 'ID_CARD',
}

/** Clock injected everywhere time matters, so rules are testable at any instant. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
