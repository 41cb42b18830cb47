/**
 * The outside calls of the refund flow, run as durable work items (never inline in a notice or an RPC):
 *   supplier.request_refund    ask the supplier to cancel units (our refund id is its idempotency key)
 *   supplier.poll_refund_audit ask for the audit outcome, with growing delays; also the audit-timeout watch
 *   supplier.change_validity   push an extended validity window to the supplier
 * Each handler re-reads the database first, so a re-run after a crash or a decision that arrived meanwhile
 * by callback makes no second effect.
 */
import type { EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import type { Database } from '../persistence/database';
import { OrderEntity } from '../persistence/entities/order.entity';
import { RefundRequestEntity } from '../persistence/entities/refund-request.entity';
import {
  CapabilityNotSupportedError,
  SupplierCallError,
  UnknownSupplierStateError,
  type SupplierAdapter,
  type SupplierOrderRef,
} from '../suppliers/supplier-adapter';
import { enqueueWork } from '../work/work-queue';
import type { WorkContext, WorkOutcome, WorkRunner } from '../work/work-runner';
import { raiseOperatorException } from './operator-exceptions';
import { applyAuditDecision, auditFollowUpKey } from './refund-audit';
import {
  DEFAULT_REFUND_AUDIT_SETTINGS,
  REFUND_EXCEPTION_KINDS,
  REFUND_WORK_KINDS,
  type ProductDirectory,
  type RefundAuditSettings,
  type RefundLog,
  type SupplierDirectory,
} from './refund-ports';
import { supplierUpstream } from './refund-requests';

export interface RefundWorkDeps {
  readonly suppliers: SupplierDirectory;
  readonly products?: ProductDirectory;
  readonly settings?: Partial<RefundAuditSettings>;
  readonly log?: RefundLog;
  /** A supplier state the mapping does not know (the item parks): raised for operators (src/state-mapping). */
  readonly onUnknownState?: (em: EntityManager, err: UnknownSupplierStateError, orderId: string) => Promise<unknown>;
}

/** Payload of a poll / audit-timeout watch item. */
export interface AuditPollPayload {
  readonly refundId: string;
  readonly poll: number;
  /** When the supplier accepted the request (pending audit), epoch ms. */
  readonly submittedAt: number;
  readonly timeoutRaised: boolean;
}

export interface ChangeValidityPayload {
  readonly orderId: string;
  readonly start: number;
  readonly end: number;
}

/** The supplier adapter of an order: its recorded instance, else the product's. */
export async function supplierFor(order: OrderEntity, deps: Pick<RefundWorkDeps, 'suppliers' | 'products'>): Promise<SupplierAdapter | undefined> {
  const byOrder = order.supplier ? deps.suppliers.get(order.supplier) : undefined;
  if (byOrder) return byOrder;
  const instance = (await deps.products?.resolve(order.outerIid, order.subOuterIid))?.supplierInstance;
  return instance ? deps.suppliers.get(instance) : undefined;
}

export function supplierRef(order: OrderEntity): SupplierOrderRef {
  let subs: string[] = [];
  try {
    const parsed: unknown = order.supplierSubOrderIds ? JSON.parse(order.supplierSubOrderIds) : [];
    if (Array.isArray(parsed)) subs = parsed.filter((s): s is string => typeof s === 'string');
  } catch {
    subs = [];
  }
  return { ourOrderCode: order.id, supplierOrderId: order.supplierOrderId ?? '', supplierSubOrderIds: subs };
}

/** Delay before poll n (1-based): base * 2^(n-1), capped. */
export function pollDelay(n: number, settings: RefundAuditSettings): number {
  return Math.min(settings.pollMaxMs, settings.pollBaseMs * 2 ** Math.min(30, Math.max(0, n - 1)));
}

/** Supplier faults -> work outcomes: retry what may pass, park what cannot. Anything else is thrown on. */
function outcomeOfFault(err: unknown): WorkOutcome {
  if (err instanceof CapabilityNotSupportedError) return { outcome: 'park', error: err.message };
  if (err instanceof UnknownSupplierStateError) return { outcome: 'park', error: err.message };
  if (err instanceof SupplierCallError) {
    return err.retryable ? { outcome: 'retry', error: err.message, ambiguous: err.ambiguous } : { outcome: 'park', error: err.message };
  }
  throw err;
}

async function loadRefund(db: Database, refundId: string): Promise<{ refund: RefundRequestEntity; order: OrderEntity } | undefined> {
  return db.read(async (em) => {
    const refund = await em.findOne(RefundRequestEntity, { where: { id: refundId } });
    if (!refund) return undefined;
    const order = await em.findOne(OrderEntity, { where: { id: refund.orderId } });
    return order ? { refund, order } : undefined;
  });
}

/** Schedules the next poll (polling suppliers) or the audit-timeout watch (callback-only suppliers). */
async function scheduleFollowUp(
  em: EntityManager,
  order: OrderEntity,
  adapter: SupplierAdapter,
  next: AuditPollPayload,
  settings: RefundAuditSettings,
  clock: Clock,
): Promise<void> {
  let notBefore: number;
  if (adapter.capabilities.auditPolling) notBefore = clock.now() + pollDelay(next.poll, settings);
  else if (!next.timeoutRaised) notBefore = next.submittedAt + settings.auditTimeoutMs;
  else return;
  await enqueueWork(
    em,
    {
      idempotencyKey: auditFollowUpKey(next.refundId, next.poll),
      // Not tied to the order: a long audit must not hold up the order's other work (resends, write-offs).
      orderId: null,
      kind: REFUND_WORK_KINDS.pollRefundAudit,
      upstream: supplierUpstream(order),
      payload: next,
      notBefore,
    },
    clock,
  );
}

export function refundWorkHandlers(deps: RefundWorkDeps) {
  const settings: RefundAuditSettings = { ...DEFAULT_REFUND_AUDIT_SETTINGS, ...deps.settings };

  async function faultOutcome(ctx: WorkContext<unknown>, err: unknown, orderId: string): Promise<WorkOutcome> {
    if (err instanceof UnknownSupplierStateError && deps.onUnknownState) await ctx.db.transaction((em) => deps.onUnknownState!(em, err, orderId));
    return outcomeOfFault(err);
  }

  async function requestRefund(ctx: WorkContext<{ refundId: string }>): Promise<WorkOutcome> {
    const { refundId } = ctx.payload;
    const loaded = await loadRefund(ctx.db, refundId);
    if (!loaded) return { outcome: 'park', error: `refund ${refundId} or its order not found` };
    const { refund, order } = loaded;
    if (refund.auditState !== 'pending_submit') return { outcome: 'done' }; // recorded by an earlier run or decided by callback
    const adapter = await supplierFor(order, deps);
    if (!adapter) return { outcome: 'park', error: `no supplier adapter for instance ${order.supplier ?? '(none)'} of order ${order.id}` };
    if (!order.supplierOrderId) return { outcome: 'park', error: `order ${order.id} has no supplier order to cancel` };

    let result;
    try {
      result = await adapter.requestRefund(
        supplierRef(order),
        { refundId, quantity: refund.quantity, wholeOrder: refund.quantity === order.purchased },
        { signal: ctx.signal },
      );
    } catch (err) {
      return faultOutcome(ctx, err, order.id);
    }

    if (result.kind === 'pending_audit') {
      const batchNo = result.batchNo;
      await ctx.db.transaction(async (em) => {
        const now = ctx.clock.now();
        const r = await em.update(RefundRequestEntity, { id: refundId, auditState: 'pending_submit' }, { auditState: 'pending_audit', supplierBatchNo: batchNo.slice(0, 64), updatedAt: now });
        if ((r.affected ?? 0) === 0) return; // decided by a callback meanwhile
        await scheduleFollowUp(em, order, adapter, { refundId, poll: 1, submittedAt: now, timeoutRaised: false }, settings, ctx.clock);
      });
      deps.log?.info({ refundId, orderId: order.id, batchNo }, 'refund accepted by supplier, pending audit');
      return { outcome: 'done' };
    }

    // Refused up front: the supplier's view (refundable quantity, state) is the truth; our units go back.
    const reason = `${result.supplierCode ? `${result.supplierCode}: ` : ''}${result.message}`;
    await ctx.db.transaction((em) =>
      applyAuditDecision(
        em,
        refundId,
        { kind: 'rejected', reason, supplierRefundable: result.refundableQuantity, supplierState: result.supplierState ?? result.neutralStatus },
        { clock: ctx.clock, source: 'request' },
      ),
    );
    deps.log?.warn({ refundId, orderId: order.id, supplierCode: result.supplierCode }, 'refund refused by supplier');
    return { outcome: 'done' };
  }

  async function pollRefundAudit(ctx: WorkContext<AuditPollPayload>): Promise<WorkOutcome> {
    const p = ctx.payload;
    const loaded = await loadRefund(ctx.db, p.refundId);
    if (!loaded) return { outcome: 'park', error: `refund ${p.refundId} or its order not found` };
    const { refund, order } = loaded;
    if (refund.auditState !== 'pending_audit') return { outcome: 'done' };
    const adapter = await supplierFor(order, deps);
    if (!adapter) return { outcome: 'park', error: `no supplier adapter for instance ${order.supplier ?? '(none)'} of order ${order.id}` };

    if (adapter.capabilities.auditPolling && refund.supplierBatchNo) {
      let audit;
      try {
        audit = await adapter.queryRefundAudit(supplierRef(order), refund.supplierBatchNo, { signal: ctx.signal });
      } catch (err) {
        return faultOutcome(ctx, err, order.id);
      }
      if (audit.kind !== 'pending') {
        const decision = audit.kind === 'approved' ? { kind: 'approved' as const, quantity: audit.quantity } : { kind: 'rejected' as const, reason: audit.reason };
        const applied = await ctx.db.transaction((em) => applyAuditDecision(em, p.refundId, decision, { clock: ctx.clock, source: 'poll' }));
        deps.log?.info({ refundId: p.refundId, orderId: order.id, decision: audit.kind, applied }, 'refund audit polled');
        return { outcome: 'done' };
      }
    }

    await ctx.db.transaction(async (em) => {
      const now = ctx.clock.now();
      let timeoutRaised = p.timeoutRaised;
      if (!timeoutRaised && now - p.submittedAt >= settings.auditTimeoutMs) {
        await raiseOperatorException(
          em,
          {
            orderId: order.id,
            kind: REFUND_EXCEPTION_KINDS.auditTimeout,
            detail: `refund ${p.refundId} (${refund.quantity} unit(s), batch ${refund.supplierBatchNo ?? '-'}) still pending the supplier's audit after ${Math.round((now - p.submittedAt) / 3_600_000)} h`,
          },
          ctx.clock,
        );
        timeoutRaised = true;
      }
      await scheduleFollowUp(em, order, adapter, { ...p, poll: p.poll + 1, timeoutRaised }, settings, ctx.clock);
    });
    return { outcome: 'done' };
  }

  async function changeValidity(ctx: WorkContext<ChangeValidityPayload>): Promise<WorkOutcome> {
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: ctx.payload.orderId } }));
    if (!order) return { outcome: 'park', error: `order ${ctx.payload.orderId} not found` };
    const adapter = await supplierFor(order, deps);
    if (!adapter) return { outcome: 'park', error: `no supplier adapter for instance ${order.supplier ?? '(none)'} of order ${order.id}` };
    const window = { start: order.validStart, end: order.validEnd };
    // Not placed yet: the placement carries the order's current (extended) validity.
    if (!order.supplierOrderId) return { outcome: 'done' };
    if (!adapter.capabilities.validityChange) {
      await ctx.db.transaction((em) =>
        raiseOperatorException(
          em,
          {
            orderId: order.id,
            kind: REFUND_EXCEPTION_KINDS.validityManual,
            detail: `supplier ${adapter.instanceCode} cannot change validity by API: change order ${order.supplierOrderId ?? order.id} by hand to ${new Date(window.start).toISOString()}..${new Date(window.end).toISOString()}`,
          },
          ctx.clock,
        ),
      );
      return { outcome: 'done' };
    }
    try {
      // Always the order's current window: a later extension supersedes this item's.
      await adapter.changeValidity(supplierRef(order), window, { signal: ctx.signal });
    } catch (err) {
      return faultOutcome(ctx, err, order.id);
    }
    deps.log?.info({ orderId: order.id }, 'validity synced to supplier');
    return { outcome: 'done' };
  }

  return { requestRefund, pollRefundAudit, changeValidity };
}

/** Registers the three handlers on a runner. */
export function registerRefundWork(runner: WorkRunner, deps: RefundWorkDeps): void {
  const h = refundWorkHandlers(deps);
  runner.register(REFUND_WORK_KINDS.requestRefund, h.requestRefund);
  runner.register(REFUND_WORK_KINDS.pollRefundAudit, h.pollRefundAudit);
  runner.register(REFUND_WORK_KINDS.changeValidity, h.changeValidity);
}
