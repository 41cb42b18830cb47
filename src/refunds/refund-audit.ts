/**
 * The supplier's audit decision, whether it arrives by callback or by our poll: applied once. The refund row's
 * audit_state is final after the first decision, so the second arrival (callback after poll, a repeated
 * callback) has no effect. The order row is locked first, then the refund row re-read, so two deciders
 * serialise on the order like every other ledger change.
 */
import type { EntityManager } from 'typeorm';
import { approveRefund as approveRefundOp, rejectRefund as rejectRefundOp } from '../domain/order';
import type { Clock } from '../domain/model';
import { loadOrderForUpdate, mutateOrder } from '../orders/order-store';
import { appendEvent } from '../outbox/outbox';
import { OrderEntity } from '../persistence/entities/order.entity';
import { RefundRequestEntity } from '../persistence/entities/refund-request.entity';
import type { SupplierCallback } from '../suppliers/supplier-adapter';
import { raiseOperatorException } from './operator-exceptions';
import { REFUND_EXCEPTION_KINDS, type RefundLog } from './refund-ports';

export type AuditDecision =
  | { readonly kind: 'approved'; readonly quantity?: number }
  | { readonly kind: 'rejected'; readonly reason: string; readonly supplierRefundable?: number; readonly supplierState?: string };

export type AuditApplyResult = 'applied' | 'already_final' | 'unknown_refund';

const FINAL_STATES = new Set(['approved', 'rejected']);

/** Applies the supplier's decision on one refund of ours (inside the caller's transaction). */
export async function applyAuditDecision(
  em: EntityManager,
  refundId: string,
  decision: AuditDecision,
  deps: { clock: Clock; source: 'poll' | 'callback' | 'request' },
): Promise<AuditApplyResult> {
  const first = await em.findOne(RefundRequestEntity, { where: { id: refundId } });
  if (!first) return 'unknown_refund';
  await loadOrderForUpdate(em, first.orderId);
  const refund = await em.findOne(RefundRequestEntity, { where: { id: refundId } });
  if (!refund || FINAL_STATES.has(refund.auditState)) return 'already_final';
  const now = deps.clock.now();
  const asked = refund.quantity;

  if (decision.kind === 'approved') {
    // A supplier may approve fewer than asked; the rest goes back and operators hear of it.
    const given = decision.quantity;
    const approved = given !== undefined && Number.isSafeInteger(given) && given > 0 && given < asked ? given : asked;
    const approveResult = await mutateOrder(em, refund.orderId, now, (o) => approveRefundOp(o, approved));
    if (!approveResult.ok) throw new Error(`approving ${approved} pending unit(s) of refund ${refundId} failed: ${approveResult.reason}`);
    if (approved < asked) {
      const back = await mutateOrder(em, refund.orderId, now, (o) => rejectRefundOp(o, asked - approved, now));
      if (!back.ok) throw new Error(`returning ${asked - approved} unit(s) of refund ${refundId} failed: ${back.reason}`);
    }
    if (given !== undefined && given !== asked) {
      await raiseOperatorException(
        em,
        { orderId: refund.orderId, kind: REFUND_EXCEPTION_KINDS.auditQuantityMismatch, detail: `refund ${refundId}: asked ${asked}, supplier approved ${given}; recorded ${approved} refunded` },
        deps.clock,
      );
    }
    const amount = refund.buyerRefundFen === null ? 0 : Number(refund.buyerRefundFen);
    await em.update(RefundRequestEntity, { id: refundId }, { auditState: 'approved', updatedAt: now });
    await appendEvent(em, { orderId: refund.orderId, type: 'refund.approved', payload: { refundId, quantity: approved, amountFen: String(amount) }, occurredAt: now }, deps.clock);
    await closeAuditFollowUps(em, refundId, now);
    return 'applied';
  }

  const rejected = await mutateOrder(em, refund.orderId, now, (o) => rejectRefundOp(o, asked, now));
  if (!rejected.ok) throw new Error(`returning ${asked} unit(s) of rejected refund ${refundId} failed: ${rejected.reason}`);
  const reason = decision.reason.slice(0, 255);
  await em.update(RefundRequestEntity, { id: refundId }, { auditState: 'rejected', rejectReason: reason, updatedAt: now });
  await appendEvent(em, { orderId: refund.orderId, type: 'refund.rejected', payload: { refundId, reason }, occurredAt: now }, deps.clock);
  const truth = [
    decision.supplierRefundable !== undefined ? `supplier says ${decision.supplierRefundable} refundable` : '',
    decision.supplierState !== undefined ? `supplier state ${decision.supplierState}` : '',
  ].filter((x) => x !== '');
  await raiseOperatorException(
    em,
    {
      orderId: refund.orderId,
      kind: REFUND_EXCEPTION_KINDS.refundRejected,
      detail: `refund ${refundId} of ${asked} unit(s) rejected by the supplier (${deps.source}): ${reason}${truth.length ? `; ${truth.join('; ')}` : ''}; units returned to ${rejected.after.ledger.expired > rejected.before.ledger.expired ? 'expired' : 'available'}`,
    },
    deps.clock,
  );
  await closeAuditFollowUps(em, refundId, now);
  return 'applied';
}

/** Idempotency key of the n-th audit follow-up (a poll, or the timeout watch of a supplier that only calls back). */
export function auditFollowUpKey(refundId: string, n: number): string {
  return `refund-audit:${refundId}:${n}`;
}

/**
 * A decided audit needs no follow-up: the one still waiting (a poll, or a 48 h timeout watch) is closed as done now,
 * instead of staying pending, counted as open work, until it runs only to find the audit decided.
 */
async function closeAuditFollowUps(em: EntityManager, refundId: string, now: number): Promise<void> {
  const prefix = auditFollowUpKey(refundId, 0).slice(0, -1).replace(/[!%_]/g, (c) => `!${c}`);
  await em.query(`UPDATE work_items SET status = 'done', updated_at = ? WHERE status = 'pending' AND idempotency_key LIKE ? ESCAPE '!'`, [now, `${prefix}%`]);
}

/**
 * Sink for a supplier's `refund_audit` callback (routed here by the callback endpoint, inside its transaction).
 * Matched by the supplier's batch number, else by the order's single refund awaiting audit. A callback we
 * cannot match is an operator exception, never a guess.
 */
export async function onRefundAudit(
  em: EntityManager,
  callback: Extract<SupplierCallback, { type: 'refund_audit' }>,
  deps: { clock: Clock; log: RefundLog },
): Promise<AuditApplyResult> {
  const refund = await matchRefund(em, callback);
  if (!refund) {
    const orderId = await matchOrderId(em, callback);
    await raiseOperatorException(
      em,
      {
        orderId,
        kind: REFUND_EXCEPTION_KINDS.auditUnmatched,
        detail: `refund audit callback ${callback.dedupKey} (batch ${callback.batchNo ?? '-'}, order ${callback.ourOrderCode ?? callback.supplierOrderId ?? '-'}, approved=${callback.approved}) matches no refund awaiting audit`,
      },
      deps.clock,
    );
    deps.log.warn({ dedupKey: callback.dedupKey, orderId }, 'refund audit callback matched no refund');
    return 'unknown_refund';
  }
  const decision: AuditDecision = callback.approved
    ? { kind: 'approved', quantity: callback.quantity }
    : { kind: 'rejected', reason: callback.reason ?? 'rejected by supplier audit', supplierState: callback.supplierState };
  const result = await applyAuditDecision(em, refund.id, decision, { clock: deps.clock, source: 'callback' });
  deps.log.info({ refundId: refund.id, orderId: refund.orderId, approved: callback.approved, result }, 'refund audit callback');
  return result;
}

async function matchOrderId(em: EntityManager, cb: { ourOrderCode?: string; supplierOrderId?: string }): Promise<string | null> {
  if (cb.ourOrderCode) {
    const o = await em.findOne(OrderEntity, { where: { id: cb.ourOrderCode }, select: { id: true } });
    if (o) return o.id;
  }
  if (cb.supplierOrderId) {
    const o = await em.findOne(OrderEntity, { where: { supplierOrderId: cb.supplierOrderId }, select: { id: true } });
    if (o) return o.id;
  }
  return null;
}

async function matchRefund(em: EntityManager, cb: Extract<SupplierCallback, { type: 'refund_audit' }>): Promise<RefundRequestEntity | undefined> {
  const orderId = await matchOrderId(em, cb);
  if (cb.batchNo) {
    const rows = await em.find(RefundRequestEntity, { where: { supplierBatchNo: cb.batchNo } });
    const mine = rows.filter((r) => orderId === null || r.orderId === orderId);
    if (mine.length === 1) return mine[0];
    if (mine.length > 1) return undefined;
  }
  if (orderId === null) return undefined;
  // No batch number: only an unambiguous single refund awaiting audit is taken; a final one makes it a repeat.
  const rows = await em.find(RefundRequestEntity, { where: { orderId }, order: { createdAt: 'ASC' } });
  const waiting = rows.filter((r) => r.auditState === 'pending_audit' || r.auditState === 'pending_submit');
  if (waiting.length === 1) return waiting[0];
  // Nothing waiting: a repeat of a decision already applied to the latest refund (it will have no effect).
  if (waiting.length === 0 && rows.length > 0) return rows[rows.length - 1];
  return undefined;
}
