/**
 * What the Taobao order flows need from modules other engineers own, as structural interfaces: the product
 * directory and supplier directory (issue 4) and the refund intake (refund flow). The real modules satisfy these
 * shapes; the composition root passes them in, so this code compiles and is tested before they land.
 */
import type { EntityManager } from 'typeorm';
import type { Clock, ValidityWindow } from '../domain/model';
import type { ProductMapping } from '../suppliers/product-catalog';
import type { SupplierAdapter } from '../suppliers/supplier-adapter';

/** The subset of a pino logger the flows use. */
export interface FlowLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Taobao item (outer_iid / sub_outer_iid) -> supplier ticket type. `ProductDirectory` in src/suppliers. */
export interface ProductResolver {
  resolve(outerIid: string | null, subOuterIid: string | null): Promise<ProductMapping | undefined>;
}

/** Configured supplier instances by instance code. `SupplierDirectory` in src/suppliers. */
export interface SupplierLookup {
  get(instanceCode: string): SupplierAdapter | undefined;
}

export interface RefundIntakeDeps {
  readonly clock: Clock;
  readonly log: FlowLog;
}

/** The refund engineer's functions (src/refunds/refund-intake.ts), called inside the notice's transaction. */
export interface RefundIntake {
  handleCancelNotice(
    em: EntityManager,
    input: { orderId: string; units: number; origin: 'taobao_cancel' | 'rights_protection' },
    deps: RefundIntakeDeps,
  ): Promise<{ ackCode: 200 }>;
  handleValidityChangeNotice(em: EntityManager, input: { orderId: string; validity: ValidityWindow }, deps: RefundIntakeDeps): Promise<{ ackCode: 200 }>;
}

/** Durable work kinds of the Taobao channel. */
export const TAOBAO_FLOW_WORK = {
  placeOrder: 'supplier.place_order',
  supplierResend: 'supplier.resend',
  taobaoSend: 'taobao.send',
  taobaoResend: 'taobao.resend',
  taobaoFailSend: 'taobao.failsend',
} as const;

/** Circuit-breaker name of TOP calls. */
export const TAOBAO_UPSTREAM = 'taobao';

export function supplierUpstream(instanceCode: string | null | undefined): string {
  return `supplier:${instanceCode ?? 'unmapped'}`;
}
