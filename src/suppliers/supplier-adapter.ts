/**
 * The one contract every scenic-spot ticketing supplier implements (a Medusa-style provider).
 *
 * Adapters speak one supplier's wire format and nothing else: no database, no retries, no circuit
 * breaking. The caller (durable work items) decides what to persist and when to try again, using
 * `SupplierCallError.retryable` / `.ambiguous`. Business outcomes (the supplier said no) come back as
 * typed values; faults (we could not get a trustworthy answer) are thrown as typed errors.
 */
import type { ValidityWindow } from '../domain/model';
import { CapabilityNotSupportedError } from './supplier-errors';

export * from './supplier-errors';

/** What an adapter can do. A `false` is a promise: calling that operation throws CapabilityNotSupportedError. */
export interface SupplierCapabilities {
  /** Refund fewer units than the order holds. */
  readonly partialRefund: boolean;
  /** Push a new (extended) validity window to the supplier. */
  readonly validityChange: boolean;
  /** Resend the voucher SMS to a different mobile number. */
  readonly resendToNewMobile: boolean;
  /** Hand out a QR image URL for a voucher. */
  readonly qrImage: boolean;
  /** The refund audit outcome can be asked for (`queryRefundAudit`). */
  readonly auditPolling: boolean;
  /** The supplier reports refund audit outcomes by callback. */
  readonly auditCallback: boolean;
  /** Individual check (admission) records can be listed. */
  readonly checkRecords: boolean;
}

export type SupplierCapability = keyof SupplierCapabilities;

export const ALL_CAPABILITIES: readonly SupplierCapability[] = [
  'partialRefund',
  'validityChange',
  'resendToNewMobile',
  'qrImage',
  'auditPolling',
  'auditCallback',
  'checkRecords',
];

/** Every operation takes the caller's deadline as an AbortSignal; the HTTP request is really aborted. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface RealNameVisitor {
  readonly name: string;
  /** ID-card number: personal data, never logged. */
  readonly id: string;
}

export interface PlaceOrderRequest {
  /** Our stable order code; the supplier's idempotency key. Re-placing with it never makes a second order. */
  readonly ourOrderCode: string;
  readonly visitorName: string;
  /** Personal data, never logged. */
  readonly mobile: string;
  /** One per ticket when the product is real-name. */
  readonly idCards?: readonly RealNameVisitor[];
  readonly supplierTicketType: string;
  readonly quantity: number;
  readonly unitPriceFen: number;
  /** Visit (occupation) date in the business calendar (GMT+8), `YYYY-MM-DD`. */
  readonly visitDate: string;
  /** Validity window agreed with Taobao, when the supplier accepts one. */
  readonly validity?: ValidityWindow;
  /**
   * Someone else sends the voucher SMS (Taobao, for `type=1` orders): the supplier must not. Adapters whose
   * supplier has a switch for it honour it (Lianhe `smsfrom=1`).
   */
  readonly suppressSms?: boolean;
}

export interface IssuedVoucher {
  readonly code: string;
  readonly quantity: number;
  readonly qrUrl?: string;
}

export type PlaceOrderResult =
  | {
      readonly kind: 'placed';
      readonly supplierOrderId: string;
      readonly supplierSubOrderIds: readonly string[];
      readonly vouchers: readonly IssuedVoucher[];
      /** Raw supplier order state, when the supplier reports one. */
      readonly supplierState?: string;
      /** True when the order already existed (an idempotent re-place). */
      readonly alreadyExisted: boolean;
    }
  | {
      readonly kind: 'rejected';
      /** Permanent: do not retry, fail the send to Taobao. */
      readonly permanent: boolean;
      readonly supplierCode: string;
      readonly message: string;
    };

/** How the caller points at an order the supplier already holds. */
export interface SupplierOrderRef {
  readonly ourOrderCode: string;
  readonly supplierOrderId: string;
  readonly supplierSubOrderIds?: readonly string[];
}

/** Supplier states mapped onto a small neutral vocabulary (the gateway maps these onto its own states). */
export type NeutralSupplierStatus =
  | 'created'
  | 'issued'
  | 'issue_failed'
  | 'partially_used'
  | 'used'
  | 'refund_pending'
  | 'partially_refunded'
  | 'refunded'
  | 'refund_rejected'
  | 'cancelled';

export const NEUTRAL_SUPPLIER_STATUSES: readonly NeutralSupplierStatus[] = [
  'created',
  'issued',
  'issue_failed',
  'partially_used',
  'used',
  'refund_pending',
  'partially_refunded',
  'refunded',
  'refund_rejected',
  'cancelled',
];

export interface SupplierOrderStatus {
  /** Exactly what the supplier said, for operators and audit. */
  readonly supplierState: string;
  /** The mapped state; mapping failures are thrown as UnknownSupplierStateError, never guessed. */
  readonly neutralStatus?: NeutralSupplierStatus;
  readonly purchasedQuantity?: number;
  readonly usedQuantity: number;
  readonly refundableQuantity: number;
  readonly refundedQuantity: number;
}

export interface ResendOptions {
  /** Personal data, never logged. Needs capability `resendToNewMobile`. */
  readonly newMobile?: string;
}

export interface ResendResult {
  /** Voucher codes the supplier reported with the resend, when it does. */
  readonly voucherCodes?: readonly string[];
}

export interface RefundRequest {
  /** Our stable refund id: the idempotency key of this refund. */
  readonly refundId: string;
  readonly quantity: number;
  /** Whole-order cancel; otherwise a partial return (needs capability `partialRefund` unless it is everything). */
  readonly wholeOrder?: boolean;
}

export type RefundRequestResult =
  | { readonly kind: 'pending_audit'; readonly batchNo: string }
  | {
      readonly kind: 'rejected';
      readonly message: string;
      readonly supplierCode?: string;
      /** What is still refundable, when the supplier told us (or a follow-up query did). */
      readonly refundableQuantity?: number;
      /** The supplier's order state on refusal; the caller adopts it. */
      readonly supplierState?: string;
      readonly neutralStatus?: NeutralSupplierStatus;
    };

export type RefundAuditResult =
  | { readonly kind: 'pending' }
  | { readonly kind: 'approved'; readonly quantity?: number }
  | { readonly kind: 'rejected'; readonly reason: string };

export interface CheckRecord {
  readonly subOrderId?: string;
  readonly count: number;
  /** Raw time text as the supplier reported it. */
  readonly checkedAt: string;
}

/** An inbound HTTP request exactly as the supplier sent it. */
export interface InboundCallbackRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawBody: Buffer;
}

/** Orders in callbacks: at least one of the two codes is present. */
interface CallbackOrder {
  readonly ourOrderCode?: string;
  readonly supplierOrderId?: string;
  /** Stable key: repeating the same notice yields the same key, so it has no second effect. */
  readonly dedupKey: string;
}

export type SupplierCallback =
  | (CallbackOrder & {
      readonly type: 'admission';
      readonly subOrderId?: string;
      /** Units admitted by this notice, when the supplier says so. */
      readonly count?: number;
      /** Units used so far, when the supplier says so (preferred: reconciles idempotently). */
      readonly totalUsed?: number;
      readonly supplierState?: string;
    })
  | (CallbackOrder & {
      readonly type: 'order_finished';
      /** Raw status (Zhiyoubao: `success` all checked, `cancel`). */
      readonly status: string;
      readonly usedQuantity?: number;
      readonly refundedQuantity?: number;
      readonly totalQuantity?: number;
    })
  | (CallbackOrder & {
      readonly type: 'refund_audit';
      readonly batchNo?: string;
      readonly approved: boolean;
      /** Units in this refund. */
      readonly quantity?: number;
      readonly cumulativeRefunded?: number;
      readonly supplierState?: string;
      readonly reason?: string;
    });

/** The exact HTTP answer the supplier expects. */
export interface CallbackReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export type CallbackParseResult =
  | { readonly ok: true; readonly callback: SupplierCallback; readonly reply: CallbackReply }
  | {
      readonly ok: false;
      readonly reason: 'bad_signature' | 'malformed' | 'unknown_notice';
      readonly message: string;
      readonly reply: CallbackReply;
    };

export interface SupplierAdapter {
  /** Supplier kind, e.g. 'zhiyoubao'. */
  readonly code: string;
  /** This configured instance (one supplier account), e.g. 'zyb-huangshan'. */
  readonly instanceCode: string;
  readonly capabilities: SupplierCapabilities;

  placeOrder(req: PlaceOrderRequest, opts?: CallOptions): Promise<PlaceOrderResult>;
  queryOrder(ref: SupplierOrderRef, opts?: CallOptions): Promise<SupplierOrderStatus>;
  resendVoucher(ref: SupplierOrderRef, resend?: ResendOptions, opts?: CallOptions): Promise<ResendResult>;
  requestRefund(ref: SupplierOrderRef, refund: RefundRequest, opts?: CallOptions): Promise<RefundRequestResult>;
  queryRefundAudit(ref: SupplierOrderRef, batchNo: string, opts?: CallOptions): Promise<RefundAuditResult>;
  changeValidity(ref: SupplierOrderRef, window: ValidityWindow, opts?: CallOptions): Promise<void>;
  queryQrImageUrl(ref: SupplierOrderRef, opts?: CallOptions): Promise<string>;
  queryCheckRecords(ref: SupplierOrderRef, opts?: CallOptions): Promise<readonly CheckRecord[]>;
  /** Verifies and types an inbound notice. Never throws for bad input: a rejection is a value. */
  parseCallback(req: InboundCallbackRequest): CallbackParseResult;
}

/** Throws CapabilityNotSupportedError when the adapter declared it cannot do this. */
export function requireCapability(adapter: Pick<SupplierAdapter, 'code' | 'capabilities'>, capability: SupplierCapability): void {
  if (!adapter.capabilities[capability]) throw new CapabilityNotSupportedError(adapter.code, capability);
}

/** Reads one header case-insensitively (Node lower-cases them, but callers may not). */
export function headerValue(headers: InboundCallbackRequest['headers'], name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === wanted) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}
