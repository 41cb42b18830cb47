/**
 * Taobao notices that end in the refund flow, called by the notice intake INSIDE its transaction (the notice
 * row, these changes, their events and work items commit together). Taobao has already decided: every
 * answer is ack 200; whatever we cannot honour becomes an operator exception, never a refusal that Taobao
 * would repeat forever.
 */
import type { EntityManager } from 'typeorm';
import { refundableNow, changeValidity as changeValidityOp } from '../domain/order';
import type { ValidityWindow } from '../domain/model';
import { loadOrderForUpdate, mutateOrder } from '../orders/order-store';
import { appendEvent } from '../outbox/outbox';
import { enqueueWork } from '../work/work-queue';
import { raiseOperatorException } from './operator-exceptions';
import { REFUND_EXCEPTION_KINDS, REFUND_WORK_KINDS, type RefundIntakeDeps } from './refund-ports';
import { placeRefundRequest, supplierUpstream, type RefundView } from './refund-requests';

export interface CancelNotice {
  /** Our order id. */
  readonly orderId: string;
  /** Taobao's cancel_num; for rights protection, the units still unused. */
  readonly units: number;
  readonly origin: 'taobao_cancel' | 'rights_protection';
}

export interface ValidityChangeNotice {
  readonly orderId: string;
  readonly validity: ValidityWindow;
}

export interface NoticeAck {
  readonly ackCode: 200;
  /** The refund placed, when one was (tests and logs). */
  readonly refund?: RefundView;
}

/**
 * Taobao cancelled units (it already refunded the buyer): we must still cancel them at the supplier. When
 * fewer are refundable (some were admitted meanwhile), refund what is refundable and raise an exception
 * for the difference; nothing goes negative.
 */
export async function handleCancelNotice(em: EntityManager, notice: CancelNotice, deps: RefundIntakeDeps): Promise<NoticeAck> {
  const now = deps.clock.now();
  const { snapshot } = await loadOrderForUpdate(em, notice.orderId);
  const units = Number.isSafeInteger(notice.units) && notice.units > 0 ? notice.units : 0;
  const refundable = refundableNow(snapshot, now);
  const take = Math.min(units, refundable.count);
  let refund: RefundView | undefined;
  if (take > 0) {
    const placed = await placeRefundRequest(em, { orderId: notice.orderId, quantity: take, origin: notice.origin }, { clock: deps.clock });
    // We asked for no more than refundable under the same lock: a rejection here is a bug, not a business answer.
    if (!placed.ok) throw new Error(`refund of ${take} refundable unit(s) was rejected: ${placed.reason}`);
    refund = placed.refund;
  }
  if (take < notice.units || units === 0) {
    const l = snapshot.ledger;
    await raiseOperatorException(
      em,
      {
        orderId: notice.orderId,
        kind: REFUND_EXCEPTION_KINDS.cancelShortfall,
        detail:
          `Taobao ${notice.origin} of ${notice.units} unit(s) but only ${refundable.count} refundable (${refundable.reason}); ` +
          `refund requested for ${take}; ledger available=${l.available} consumed=${l.consumed} refund_pending=${l.refundPending} ` +
          `refunded=${l.refunded} expired=${l.expired}: settle the difference with the seller/supplier`,
      },
      deps.clock,
    );
  }
  deps.log.info({ orderId: notice.orderId, origin: notice.origin, asked: notice.units, refunded: take, refundId: refund?.id }, 'cancel notice handled');
  return refund ? { ackCode: 200, refund } : { ackCode: 200 };
}

/**
 * The seller changed the validity. Extension: applied, announced, and pushed to the supplier by a work item
 * (which raises the hand-change exception when the supplier cannot take it by API). Shortening or a malformed
 * window: refused locally, flagged for operators, still acked. The same window again changes nothing.
 */
export async function handleValidityChangeNotice(em: EntityManager, notice: ValidityChangeNotice, deps: RefundIntakeDeps): Promise<NoticeAck> {
  const now = deps.clock.now();
  const next = notice.validity;
  const { snapshot } = await loadOrderForUpdate(em, notice.orderId);
  if (snapshot.validity.start === next.start && snapshot.validity.end === next.end) return { ackCode: 200 };

  const mutated = await mutateOrder(em, notice.orderId, now, (order) => changeValidityOp(order, next, now));
  if (!mutated.ok) {
    await raiseOperatorException(
      em,
      {
        orderId: notice.orderId,
        kind: REFUND_EXCEPTION_KINDS.validityShortened,
        detail: `validity change refused (${mutated.reason}): ${mutated.message}; current ${iso(snapshot.validity.start)}..${iso(snapshot.validity.end)}, asked ${iso(next.start)}..${iso(next.end)}`,
      },
      deps.clock,
    );
    deps.log.warn({ orderId: notice.orderId, reason: mutated.reason }, 'validity change refused');
    return { ackCode: 200 };
  }
  await appendEvent(
    em,
    { orderId: notice.orderId, type: 'validity.changed', payload: { validStartTime: new Date(next.start), validEndTime: new Date(next.end) }, occurredAt: now },
    deps.clock,
  );
  await enqueueWork(
    em,
    {
      idempotencyKey: `validity:${notice.orderId}:${next.start}:${next.end}`,
      orderId: notice.orderId,
      kind: REFUND_WORK_KINDS.changeValidity,
      upstream: supplierUpstream(mutated.entity),
      payload: { orderId: notice.orderId, start: next.start, end: next.end },
    },
    deps.clock,
  );
  deps.log.info({ orderId: notice.orderId }, 'validity extended');
  return { ackCode: 200 };
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}
