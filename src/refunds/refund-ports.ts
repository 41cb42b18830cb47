/**
 * What the refund and expiry flows need from the rest of the gateway, as small structural interfaces. The
 * supplier directory and the product directory are built by the supplier engineer (issue 4); anything with
 * this shape fits, so tests can pass a plain map.
 */
import type { Clock } from '../domain/model';
import type { ProductMapping } from '../suppliers/product-catalog';
import type { SupplierAdapter } from '../suppliers/supplier-adapter';

/** Configured supplier instances by instance code (e.g. 'zyb-huangshan'). */
export interface SupplierDirectory {
  get(instanceCode: string): SupplierAdapter | undefined;
}

/** The product's expiry policy and supplier instance, looked up by the seller's product codes. */
export type ProductPolicy = Pick<ProductMapping, 'supplierInstance' | 'expiryRefund'>;

/** The supplier engineer's ProductDirectory (src/suppliers/product-directory.ts) fits. It may read the database:
 *  never call it inside a transaction (SQLite refuses nesting); resolve first, then open the transaction. */
export interface ProductDirectory {
  resolve(outerIid: string | null, subOuterIid: string | null): Promise<ProductPolicy | undefined>;
}

/** The part of a logger these flows use (pino's Logger fits). */
export interface RefundLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** What the notice intake passes in. */
export interface RefundIntakeDeps {
  readonly clock: Clock;
  readonly log: RefundLog;
}

/** Tuning of the supplier audit follow-up. */
export interface RefundAuditSettings {
  /** An audit still pending this long after submission raises one operator exception (polling goes on). */
  readonly auditTimeoutMs: number;
  /** First poll this long after submission; then doubling up to `pollMaxMs`. */
  readonly pollBaseMs: number;
  readonly pollMaxMs: number;
}

export const DEFAULT_REFUND_AUDIT_SETTINGS: RefundAuditSettings = {
  auditTimeoutMs: 48 * 60 * 60 * 1000,
  pollBaseMs: 60_000,
  pollMaxMs: 60 * 60 * 1000,
};

/** Work kinds this module registers. */
export const REFUND_WORK_KINDS = {
  requestRefund: 'supplier.request_refund',
  pollRefundAudit: 'supplier.poll_refund_audit',
  changeValidity: 'supplier.change_validity',
} as const;

/** Operator exception kinds raised here (operators filter on them). */
export const REFUND_EXCEPTION_KINDS = {
  /** Taobao cancelled (already refunded the buyer) more units than we could refund at the supplier. */
  cancelShortfall: 'refund_cancel_shortfall',
  /** The supplier refused the refund request or its audit rejected it. */
  refundRejected: 'refund_rejected',
  /** The audit is still pending after REFUND_AUDIT_TIMEOUT_MS. */
  auditTimeout: 'refund_audit_timeout',
  /** A supplier audit callback matched no refund of ours. */
  auditUnmatched: 'refund_audit_unmatched',
  /** The supplier approved a different quantity than we asked for. */
  auditQuantityMismatch: 'refund_audit_quantity_mismatch',
  /** Taobao asked to shorten the validity: refused locally. */
  validityShortened: 'validity_shortening_refused',
  /** The supplier cannot take validity changes by API: someone must change it by hand. */
  validityManual: 'validity_change_manual',
} as const;
