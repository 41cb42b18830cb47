/**
 * Placing a refund request, always inside the caller's transaction: the ledger move (units -> refund pending),
 * the refund_requests row (our refund id = the supplier's idempotency key), the `refund.requested` event and
 * the `supplier.request_refund` work item commit together or not at all.
 */
import type { EntityManager } from 'typeorm';
import { requestRefund as requestRefundOp } from '../domain/order';
import type { Clock } from '../domain/model';
import { buyerRefundFen, CODE_FEE_FEN, FULL_RATIO_BASIS_POINTS } from '../domain/refund-amount';
import { mutateOrder } from '../orders/order-store';
import { appendEvent } from '../outbox/outbox';
import type { OrderEntity } from '../persistence/entities/order.entity';
import { RefundRequestEntity, type RefundAuditState, type RefundOrigin } from '../persistence/entities/refund-request.entity';
import { newId } from '../persistence/ids';
import { enqueueWork } from '../work/work-queue';
import { REFUND_WORK_KINDS } from './refund-ports';

export interface PlaceRefundInput {
  readonly orderId: string;
  readonly quantity: number;
  readonly origin: RefundOrigin;
  /** An internal caller's request id (CancelOrder); its retry must find this refund instead of making another. */
  readonly callerRequestId?: string;
}

/** A refund as callers see it. */
export interface RefundView {
  readonly id: string;
  readonly orderId: string;
  readonly quantity: number;
  readonly origin: RefundOrigin;
  readonly auditState: RefundAuditState;
  readonly callerRequestId: string | null;
  readonly supplierBatchNo: string | null;
  readonly buyerRefundFen: number | null;
  readonly rejectReason: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type PlaceRefundResult =
  | { readonly ok: true; readonly refund: RefundView }
  | {
      readonly ok: false;
      /** The domain's reason, e.g. EXCEEDS_REFUNDABLE (details.refundable), NOT_ISSUED, NON_POSITIVE_COUNT. */
      readonly reason: string;
      readonly message: string;
      readonly details?: Record<string, unknown>;
    };

/** Work payload of `supplier.request_refund` and `supplier.poll_refund_audit`. */
export interface RefundWorkPayload {
  readonly refundId: string;
  /** Poll number (1 = first poll); absent on the request itself. */
  readonly poll?: number;
  /** The audit-timeout exception was already raised for this refund. */
  readonly timeoutRaised?: boolean;
}

export function toRefundView(r: RefundRequestEntity): RefundView {
  return {
    id: r.id,
    orderId: r.orderId,
    quantity: r.quantity,
    origin: r.origin,
    auditState: r.auditState,
    callerRequestId: r.callerRequestId,
    supplierBatchNo: r.supplierBatchNo,
    buyerRefundFen: r.buyerRefundFen === null ? null : Number(r.buyerRefundFen),
    rejectReason: r.rejectReason,
    createdAt: Number(r.createdAt),
    updatedAt: Number(r.updatedAt),
  };
}

/** Circuit-breaker name of the order's supplier instance. */
export function supplierUpstream(order: Pick<OrderEntity, 'supplier'>): string {
  return `supplier:${order.supplier ?? 'unknown'}`;
}

/**
 * What Taobao refunds the buyer: units x unit price x ratio - 1 yuan (code fee), never below 0. Still-valid
 * units count at the full ratio, expired ones at the product's expiry ratio; an expired unit of a product we
 * cannot resolve gives null (unknown), never a guess.
 */
export function buyerAmountFor(unitPriceFen: number, fromAvailable: number, fromExpired: number, expiryRatioBasisPoints: number | undefined): number | null {
  if (fromExpired > 0 && expiryRatioBasisPoints === undefined) return null;
  if (fromExpired === 0) {
    const r = buyerRefundFen(fromAvailable, unitPriceFen, FULL_RATIO_BASIS_POINTS);
    return r.ok ? r.value : null;
  }
  if (fromAvailable === 0) {
    const r = buyerRefundFen(fromExpired, unitPriceFen, expiryRatioBasisPoints!);
    return r.ok ? r.value : null;
  }
  // Both buckets in one refund: one code fee for the refund, not one per bucket.
  const price = BigInt(unitPriceFen);
  const gross = BigInt(fromAvailable) * price + (BigInt(fromExpired) * price * BigInt(expiryRatioBasisPoints!)) / BigInt(FULL_RATIO_BASIS_POINTS);
  const net = gross - BigInt(CODE_FEE_FEN);
  return net <= 0n ? 0 : Number(net);
}

/**
 * Moves the units to refund pending and records everything the supplier call needs. A domain rejection
 * (more than refundable, not issued) changes nothing and is returned.
 */
export async function placeRefundRequest(
  em: EntityManager,
  input: PlaceRefundInput,
  deps: { clock: Clock; /** The product's expiry refund ratio, resolved before the transaction; undefined = unknown. */ expiryRatioBasisPoints?: number },
): Promise<PlaceRefundResult> {
  const now = deps.clock.now();
  const mutated = await mutateOrder(em, input.orderId, now, (order) => requestRefundOp(order, input.quantity, now));
  if (!mutated.ok) return { ok: false, reason: mutated.reason, message: mutated.message, details: mutated.details };

  const fromAvailable = mutated.before.ledger.available - mutated.after.ledger.available;
  const refundId = newId('r_', now);
  const amount = buyerAmountFor(Number(mutated.entity.unitPriceFen), fromAvailable, input.quantity - fromAvailable, deps.expiryRatioBasisPoints);
  const row: RefundRequestEntity = Object.assign(new RefundRequestEntity(), {
    id: refundId,
    orderId: input.orderId,
    quantity: input.quantity,
    // A refund may take from both buckets; the audit's rejection decides where units return by validity anyway.
    fromBucket: fromAvailable > 0 ? 'available' : 'expired',
    origin: input.origin,
    callerRequestId: input.callerRequestId ?? null,
    supplierBatchNo: null,
    auditState: 'pending_submit',
    buyerRefundFen: amount,
    rejectReason: null,
    createdAt: now,
    updatedAt: now,
  } satisfies Partial<RefundRequestEntity>);
  await em.insert(RefundRequestEntity, row);
  await appendEvent(
    em,
    { orderId: input.orderId, type: 'refund.requested', payload: { refundId, quantity: input.quantity, amountFen: String(amount ?? 0) }, occurredAt: now },
    deps.clock,
  );
  const payload: RefundWorkPayload = { refundId };
  await enqueueWork(
    em,
    { idempotencyKey: `refund:${refundId}`, orderId: input.orderId, kind: REFUND_WORK_KINDS.requestRefund, upstream: supplierUpstream(mutated.entity), payload },
    deps.clock,
  );
  return { ok: true, refund: toRefundView(row) };
}

export async function findRefund(em: EntityManager, refundId: string): Promise<RefundView | undefined> {
  const row = await em.findOne(RefundRequestEntity, { where: { id: refundId } });
  return row ? toRefundView(row) : undefined;
}

export async function listOrderRefunds(em: EntityManager, orderId: string): Promise<RefundView[]> {
  const rows = await em.find(RefundRequestEntity, { where: { orderId }, order: { createdAt: 'ASC', id: 'ASC' } });
  return rows.map(toRefundView);
}
