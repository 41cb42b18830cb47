/**
 * `resend` (buyer asks for the codes again) and `modified` (buyer changed the mobile): decided inside the notice's
 * transaction, carried out by work items. The codes to resend are fixed at the ack (all still-usable codes), so
 * the `{"code":300}` answer ("the codes differ from those sent before") matches what Taobao is then told.
 *
 * Decisions:
 * - At most one buyer `resend` per GMT+8 day (domain resend-rules): a second one that day is acknowledged 200 and
 *   NOT resent (logged). `modified` is not limited: the new number must get its codes.
 * - `type=1` (Taobao sends the SMS): no supplier SMS, straight to `eticket.resend`.
 * - Before the codes exist (RECEIVED/ISSUING) there is nothing to resend; a `modified` still replaces the stored
 *   mobile, so the placement uses the new number.
 */
import type { EntityManager } from 'typeorm';
import { canResend } from '../domain/resend-rules';
import { OrderState, type Clock } from '../domain/model';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import { CapabilityNotSupportedError, SupplierCallError } from '../suppliers/supplier-adapter';
import type { ModifiedNotice, ResendNotice } from '../taobao/notice-parser';
import { enqueueWork } from '../work/work-queue';
import type { WorkContext, WorkHandler, WorkOutcome } from '../work/work-runner';
import { lastSentCodes, sameCodeSet, usableCodes, type CodesCallPayload } from './order-codes';
import { contactColumns } from './order-issuing';
import { TAOBAO_FLOW_WORK, TAOBAO_UPSTREAM, supplierUpstream, type FlowLog, type SupplierLookup } from './order-ports';
import { loadOrderForUpdate } from './order-store';

export interface ResendIntakeDeps {
  readonly protector: PersonalDataProtector;
  readonly clock: Clock;
  readonly log: FlowLog;
}

export type ResendDecision = 'queued' | 'already_resent_today' | 'not_issued' | 'nothing_usable' | 'order_unknown' | 'order_ended';

export interface ResendIntakeResult {
  readonly ackCode: 200 | 300;
  readonly decision: ResendDecision;
  readonly orderId?: string;
}

/** Operator exception kind: a notice names a Taobao order we do not hold. */
export const UNKNOWN_ORDER_EXCEPTION = 'notice_for_unknown_order';

const ISSUED_STATES = new Set<OrderState>([OrderState.Issued, OrderState.PartiallyConsumed, OrderState.PartiallyRefunded, OrderState.RefundPendingAudit]);

/** `noticeKey` (the notice's dedup key) makes the work items of this notice unique. */
export async function acceptResendNotice(
  em: EntityManager,
  notice: ResendNotice | ModifiedNotice,
  noticeKey: string,
  deps: ResendIntakeDeps,
): Promise<ResendIntakeResult> {
  const now = deps.clock.now();
  const found = await em.findOne(OrderEntity, { where: { taobaoOrderId: notice.orderId }, select: { id: true } });
  if (!found) {
    await raiseUnknownOrder(em, notice.method, notice.orderId, now);
    deps.log.warn({ method: notice.method, taobaoOrderId: notice.orderId }, 'notice for an order we do not hold; acknowledged');
    return { ackCode: 200, decision: 'order_unknown' };
  }
  const { entity: order } = await loadOrderForUpdate(em, found.id);
  const changes: Partial<OrderEntity> = {};
  if (notice.method === 'modified') Object.assign(changes, contactColumns(notice, deps.protector), { noticeType: notice.noticeType });

  let decision: ResendDecision = 'queued';
  if (order.state === OrderState.Received || order.state === OrderState.Issuing) decision = 'not_issued';
  else if (!ISSUED_STATES.has(order.state)) decision = 'order_ended';
  else if (notice.method === 'resend') {
    const allowed = canResend(order.lastResendAt === null ? [] : [order.lastResendAt], now);
    if (!allowed.ok) decision = 'already_resent_today';
    else changes.lastResendAt = now;
  }
  const codes = decision === 'queued' ? await usableCodes(em, order.id) : [];
  if (decision === 'queued' && codes.length === 0) {
    decision = 'nothing_usable';
    delete changes.lastResendAt;
  }
  if (Object.keys(changes).length > 0) {
    await em.update(OrderEntity, { id: order.id }, { ...changes, version: order.version + 1, updatedAt: now });
  }
  if (decision !== 'queued') {
    deps.log.info({ orderId: order.id, method: notice.method, decision }, 'resend notice acknowledged without a resend');
    return { ackCode: 200, decision, orderId: order.id };
  }

  const before = await lastSentCodes(em, order.id);
  const ackCode = before === undefined || sameCodeSet(before, codes.map((c) => c.code)) ? 200 : 300;
  const taobaoSendsSms = (notice.method === 'modified' ? notice.noticeType : order.noticeType) === 1;
  const payload: SupplierResendPayload = { orderId: order.id, codes, toNewMobile: notice.method === 'modified' };
  if (taobaoSendsSms) {
    await enqueueWork(
      em,
      { idempotencyKey: `taobao-resend:${noticeKey}`, orderId: order.id, kind: TAOBAO_FLOW_WORK.taobaoResend, upstream: TAOBAO_UPSTREAM, payload: { orderId: order.id, codes } satisfies CodesCallPayload },
      deps.clock,
    );
  } else {
    await enqueueWork(
      em,
      { idempotencyKey: `supplier-resend:${noticeKey}`, orderId: order.id, kind: TAOBAO_FLOW_WORK.supplierResend, upstream: supplierUpstream(order.supplier), payload },
      deps.clock,
    );
  }
  return { ackCode, decision, orderId: order.id };
}

export async function raiseUnknownOrder(em: EntityManager, method: string, taobaoOrderId: string, now: number): Promise<void> {
  await em.insert(OperatorExceptionEntity, {
    kind: UNKNOWN_ORDER_EXCEPTION,
    orderId: null,
    detail: `${method} notice for Taobao order ${taobaoOrderId}, which we do not hold`,
    createdAt: now,
    resolvedAt: null,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// supplier.resend

export interface SupplierResendPayload {
  readonly orderId: string;
  /** The codes Taobao is told afterwards (fixed at the ack). */
  readonly codes: CodesCallPayload['codes'];
  /** `modified`: SMS to the order's (new) stored mobile. */
  readonly toNewMobile: boolean;
}

export interface ResendWorkDeps {
  readonly suppliers: SupplierLookup;
  readonly protector: PersonalDataProtector;
  readonly log: FlowLog;
}

/** Asks the supplier to SMS the codes again (to the new number after `modified`), then queues `eticket.resend`. */
export function supplierResendHandler(deps: ResendWorkDeps): WorkHandler<SupplierResendPayload> {
  return async (ctx: WorkContext<SupplierResendPayload>): Promise<WorkOutcome> => {
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: ctx.payload.orderId } }));
    if (!order) return { outcome: 'park', error: `order ${ctx.payload.orderId} does not exist` };
    const adapter = order.supplier ? deps.suppliers.get(order.supplier) : undefined;
    if (!adapter || !order.supplierOrderId) return { outcome: 'park', error: `supplier ${order.supplier ?? '-'} of order ${order.id} is not available` };
    const ref = { ourOrderCode: order.id, supplierOrderId: order.supplierOrderId, supplierSubOrderIds: parseIds(order.supplierSubOrderIds) };

    let supplierSkipped: string | undefined;
    if (ctx.payload.toNewMobile && !adapter.capabilities.resendToNewMobile) {
      supplierSkipped = `supplier ${adapter.instanceCode} cannot resend to a new mobile; the buyer's new number got no supplier SMS`;
    } else {
      const newMobile = ctx.payload.toNewMobile && order.mobileCipher ? deps.protector.decrypt(order.mobileCipher) : undefined;
      try {
        const r = await adapter.resendVoucher(ref, newMobile === undefined ? {} : { newMobile }, { signal: ctx.signal });
        const ours = ctx.payload.codes.map((c) => c.code);
        if (r.voucherCodes && r.voucherCodes.some((c) => !ours.includes(c))) {
          deps.log.warn({ orderId: order.id }, 'supplier reported codes we do not hold on resend');
        }
      } catch (err) {
        if (err instanceof SupplierCallError) {
          if (err.retryable) return { outcome: 'retry', error: err.message, ambiguous: err.ambiguous };
          return { outcome: 'park', error: err.message };
        }
        if (!(err instanceof CapabilityNotSupportedError)) throw err;
        supplierSkipped = err.message;
      }
    }
    await ctx.db.transaction(async (em) => {
      const now = ctx.clock.now();
      if (supplierSkipped) {
        await em.insert(OperatorExceptionEntity, { kind: 'supplier_resend_unsupported', orderId: order.id, detail: supplierSkipped, createdAt: now, resolvedAt: null });
      }
      await enqueueWork(
        em,
        {
          idempotencyKey: `taobao-resend:${ctx.item.idempotencyKey}`,
          orderId: order.id,
          kind: TAOBAO_FLOW_WORK.taobaoResend,
          upstream: TAOBAO_UPSTREAM,
          payload: { orderId: order.id, codes: ctx.payload.codes } satisfies CodesCallPayload,
        },
        ctx.clock,
      );
    });
    return { outcome: 'done' };
  };
}

function parseIds(text: string | null): string[] | undefined {
  if (!text) return undefined;
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : undefined;
}
