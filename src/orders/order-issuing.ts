/**
 * Issuing an order: the `send` notice creates it (inside the notice's transaction) and queues
 * `supplier.place_order`; that work item places the supplier order and, once the codes exist, queues the TOP
 * `send` (or `failsend` when the supplier refuses for good or the product never gets mapped).
 */
import type { EntityManager } from 'typeorm';
import { markIssued, markIssueFailed, newOrder, startIssue } from '../domain/order';
import { maskMobile } from '../domain/personal-data';
import { OrderState, type Clock, type ValidityWindow } from '../domain/model';
import { appendEvent, appendEventStatements } from '../outbox/outbox';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import { VoucherEntity } from '../persistence/entities/voucher.entity';
import { DuplicateOrderError, type NewOrder, type OrderRepository } from '../persistence/order-repository';
import { insertStatement, runStatements, type SqlStatement } from '../persistence/statement-batch';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import { CapabilityNotSupportedError, SupplierCallError, type PlaceOrderResult } from '../suppliers/supplier-adapter';
import type { SendNotice } from '../taobao/notice-parser';
import { taobaoDay } from '../taobao/taobao-time';
import { enqueueWork, enqueueWorkStatement, type EnqueueWorkInput } from '../work/work-queue';
import type { ResultRecord, WorkContext, WorkHandler, WorkOutcome } from '../work/work-runner';
import type { CodesCallPayload } from './order-codes';
import { TAOBAO_FLOW_WORK, TAOBAO_UPSTREAM, supplierUpstream, type FlowLog, type ProductResolver, type SupplierLookup } from './order-ports';
import { ledgerOf, mutateOrder, phaseOf, saveOrderStatement, type LockedOrder } from './order-store';

/** `error_code` we pass to `eticket.failsend` (our own numbering; Taobao only shows it). */
export const FAILSEND_ERROR = {
  /** The Taobao item maps to no supplier ticket type, and no operator mapped it in time. */
  productUnmapped: 1001,
  /** The supplier refused the order for good. */
  supplierRejected: 1002,
} as const;

/** Operator exception kind raised while a paid order waits for its product mapping. */
export const PRODUCT_UNMAPPED_EXCEPTION = 'product_unmapped';

/** No validity on the notice (never seen in real samples): valid from the notice's GMT+8 day for a year. */
const DEFAULT_VALIDITY_MS = 365 * 24 * 3600_000;
const GMT8_MS = 8 * 3600_000;
const DAY_MS = 24 * 3600_000;

export interface SendIntakeDeps {
  readonly orders: OrderRepository;
  readonly protector: PersonalDataProtector;
  readonly clock: Clock;
  readonly log: FlowLog;
  /** Breaker name for the place-order work (the product's supplier when known at intake). */
  readonly placeUpstream?: string;
}

export type SendIntakeResult =
  | { readonly kind: 'created'; readonly orderId: string }
  /** The Taobao order is already held (a repeated send under another dedup key): nothing new. */
  | { readonly kind: 'existing'; readonly orderId: string }
  | { readonly kind: 'rejected'; readonly reason: string; readonly message: string };

/** Creates the order (RECEIVED, every unit available but nothing usable until issued) and queues its placement. */
export async function acceptSendNotice(em: EntityManager, notice: SendNotice, deps: SendIntakeDeps): Promise<SendIntakeResult> {
  const planned = orderFromSendNotice(notice, deps);
  if (!planned.ok) return { kind: 'rejected', reason: planned.reason, message: planned.message };
  let view;
  try {
    view = await deps.orders.insert(planned.order, [], em);
  } catch (err) {
    // Not looked up first: a held order is rare (a repeated send under another dedup key), and the unique index finds it.
    if (err instanceof DuplicateOrderError) {
      const again = await em.findOne(OrderEntity, { where: { taobaoOrderId: notice.orderId }, select: { id: true } });
      if (again) return { kind: 'existing', orderId: again.id };
    }
    throw err;
  }
  await enqueueWork(em, placeOrderWork(view.id, deps), deps.clock);
  return { kind: 'created', orderId: view.id };
}

/**
 * The same creation as statements, to be sent in one round trip with the notice's own row (the notice intake's
 * usual path). A held order makes the order's INSERT fail on its unique Taobao order id; the intake then rolls back
 * and takes acceptSendNotice, which answers 'existing'.
 */
export function acceptSendNoticeStatements(
  em: EntityManager,
  notice: SendNotice,
  deps: SendIntakeDeps,
): { readonly kind: 'statements'; readonly orderId: string; readonly statements: SqlStatement[] } | Extract<SendIntakeResult, { kind: 'rejected' }> {
  const planned = orderFromSendNotice(notice, deps);
  if (!planned.ok) return { kind: 'rejected', reason: planned.reason, message: planned.message };
  const order = deps.orders.insertStatement(planned.order, em);
  return { kind: 'statements', orderId: order.id, statements: [order.statement, enqueueWorkStatement(em, placeOrderWork(order.id, deps), deps.clock)] };
}

function orderFromSendNotice(notice: SendNotice, deps: SendIntakeDeps): { ok: true; order: NewOrder } | { ok: false; reason: string; message: string } {
  const created = newOrder(notice.num, validityOf(notice));
  if (!created.ok) return created;
  const totalFeeFen = notice.totalFeeFen ?? 0;
  return {
    ok: true,
    order: {
      taobaoOrderId: notice.orderId,
      token: notice.token,
      numIid: notice.numIid,
      outerIid: notice.outerIid,
      subOuterIid: notice.subOuterIid,
      itemTitle: notice.itemTitle,
      skuProperties: notice.skuProperties,
      sellerId: notice.sellerId,
      sellerNick: notice.sellerNick,
      unitPriceFen: Math.floor(totalFeeFen / notice.num),
      totalFeeFen,
      sendType: notice.sendType,
      consumeType: notice.consumeType,
      noticeType: notice.noticeType,
      ...contactColumns(notice, deps.protector),
      validStart: created.value.validity.start,
      validEnd: created.value.validity.end,
      state: created.value.state,
      ledger: created.value.ledger,
      createdAt: deps.clock.now(),
    },
  };
}

function placeOrderWork(orderId: string, deps: SendIntakeDeps): EnqueueWorkInput {
  return {
    idempotencyKey: `place:${orderId}`,
    orderId,
    kind: TAOBAO_FLOW_WORK.placeOrder,
    upstream: deps.placeUpstream ?? supplierUpstream(undefined),
    payload: { orderId } satisfies PlaceOrderPayload,
  };
}

/** Mobile columns: clear number (type 0/2) protected three ways; type 1 gives only Taobao's mask, kept as is. */
export function contactColumns(
  contact: { noticeType: 0 | 1 | 2; mobile?: string; encryptMobile?: string },
  protector: PersonalDataProtector,
): { mobileMasked: string | null; mobileHash: string | null; mobileCipher: string | null } {
  if (contact.noticeType !== 1 && contact.mobile) {
    const p = protector.protectMobile(contact.mobile);
    return { mobileMasked: p.masked, mobileHash: p.hash, mobileCipher: p.cipher };
  }
  // Taobao's mask is already masked; masking again keeps anything unexpected from being stored in clear.
  const masked = contact.encryptMobile ? (contact.encryptMobile.includes('*') ? contact.encryptMobile : maskMobile(contact.encryptMobile)) : null;
  return { mobileMasked: masked, mobileHash: null, mobileCipher: null };
}

function validityOf(notice: SendNotice): ValidityWindow {
  if (notice.validStart !== undefined && notice.validEnd !== undefined) return { start: notice.validStart, end: notice.validEnd };
  const dayStart = Math.floor((notice.timestamp + GMT8_MS) / DAY_MS) * DAY_MS - GMT8_MS;
  return { start: dayStart, end: dayStart + DEFAULT_VALIDITY_MS - 1000 };
}

// ---------------------------------------------------------------------------------------------------------------
// supplier.place_order

export interface PlaceOrderPayload {
  readonly orderId: string;
}

export interface IssueWorkDeps {
  readonly products: ProductResolver;
  readonly suppliers: SupplierLookup;
  readonly protector: PersonalDataProtector;
  readonly log: FlowLog;
  /** Attempts an unmapped product is retried (an operator may map it meanwhile) before `failsend`. Default 6. */
  readonly unmappedProductAttempts?: number;
}

/** Name shown to a supplier that wants a visitor name: Taobao does not give us the buyer's. */
export const DEFAULT_VISITOR_NAME = '淘宝买家';

export function placeOrderHandler(deps: IssueWorkDeps): WorkHandler<PlaceOrderPayload> {
  const unmappedAttempts = deps.unmappedProductAttempts ?? 6;
  return async (ctx: WorkContext<PlaceOrderPayload>): Promise<WorkOutcome> => {
    const { orderId } = ctx.payload;
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: orderId } }));
    if (!order) return { outcome: 'park', error: `order ${orderId} does not exist` };
    if (order.state !== OrderState.Received && order.state !== OrderState.Issuing) {
      // A re-run after the outcome was committed (crash before the runner recorded done), or closed meanwhile.
      return { outcome: 'done' };
    }

    const product = order.outerIid || order.subOuterIid ? await deps.products.resolve(order.outerIid, order.subOuterIid) : undefined;
    if (!product) {
      const what = `Taobao item outer_iid=${order.outerIid ?? '-'} sub_outer_iid=${order.subOuterIid ?? '-'} maps to no supplier ticket type`;
      if (ctx.attempt < unmappedAttempts) {
        if (ctx.attempt === 1) {
          await ctx.db.transaction(async (em) => {
            const now = ctx.clock.now();
            const detail = `${what}; order ${order.id} waits (attempt ${ctx.attempt}/${unmappedAttempts}) then fails the send`;
            await em.insert(OperatorExceptionEntity, { kind: PRODUCT_UNMAPPED_EXCEPTION, orderId: order.id, detail, createdAt: now, resolvedAt: null });
            await appendEvent(em, { orderId: order.id, type: 'exception.raised', payload: { kind: PRODUCT_UNMAPPED_EXCEPTION, detail, workItemId: String(ctx.item.id) } }, ctx.clock);
          });
        }
        deps.log.warn({ orderId: order.id, attempt: ctx.attempt }, 'product not mapped; will retry');
        return { outcome: 'retry', error: what };
      }
      await ctx.db.transaction((em) => failIssue(em, order.id, `product unmapped: ${what}`, FAILSEND_ERROR.productUnmapped, '商品未映射到供应商票型', ctx.clock));
      deps.log.warn({ orderId: order.id }, 'product never mapped; failsend queued');
      return { outcome: 'done' };
    }

    const adapter = deps.suppliers.get(product.supplierInstance);
    if (!adapter) return { outcome: 'park', error: `supplier instance ${product.supplierInstance} is not configured` };

    // ISSUING, visibly, before the outside call; a re-run after a crash finds it already ISSUING.
    const issuing = await startIssuing(ctx, order, product.supplierInstance);
    if (!issuing) return { outcome: 'done' };

    const taobaoSendsSms = order.noticeType === 1;
    // The clear mobile exists only in this call, never in a log or an error.
    const mobile = order.mobileCipher ? deps.protector.decrypt(order.mobileCipher) : (order.mobileMasked ?? '');
    let result: PlaceOrderResult;
    try {
      result = await adapter.placeOrder(
        {
          ourOrderCode: order.id,
          visitorName: order.visitorName ?? DEFAULT_VISITOR_NAME,
          mobile,
          supplierTicketType: product.supplierTicketType,
          quantity: order.purchased,
          unitPriceFen: order.unitPriceFen,
          visitDate: taobaoDay(Math.max(order.validStart, Math.min(ctx.clock.now(), order.validEnd))),
          validity: { start: order.validStart, end: order.validEnd },
          suppressSms: taobaoSendsSms,
        },
        { signal: ctx.signal },
      );
    } catch (err) {
      return supplierFault(err);
    }

    if (result.kind === 'rejected') {
      if (!result.permanent) return { outcome: 'retry', error: `supplier refused for now: ${result.supplierCode} ${result.message}` };
      await ctx.db.transaction((em) =>
        failIssue(em, order.id, `supplier refused: ${result.supplierCode} ${result.message}`, FAILSEND_ERROR.supplierRejected, '供应商拒绝出票', ctx.clock),
      );
      return { outcome: 'done' };
    }

    const units = result.vouchers.reduce((s, v) => s + v.quantity, 0);
    if (result.vouchers.length === 0 || units !== order.purchased) {
      return { outcome: 'park', error: `supplier issued ${units} unit(s) in ${result.vouchers.length} code(s) for ${order.purchased} purchased` };
    }
    if (order.consumeType === 1 && result.vouchers.some((v) => v.quantity > 1)) {
      // consume_type 1 is one entry per code; a multi-unit code is still usable unit by unit at our gates.
      deps.log.warn({ orderId: order.id }, 'one-use order got a multi-unit supplier code');
    }
    return { outcome: 'done', record: issuedRecord(ctx, order, issuing, product.supplierInstance, result) };
  };
}

/** The order as read at the start of the item, for a save checked against that version (a change since moved it). */
function asRead(order: OrderEntity): LockedOrder {
  const ledger = ledgerOf(order);
  return {
    id: order.id,
    version: order.version,
    snapshot: { state: order.state, phase: phaseOf(order.state, ledger), ledger, validity: { start: order.validStart, end: order.validEnd }, writeOffs: [] },
  };
}

/**
 * Moves the order to ISSUING with its supplier; undefined when it can no longer be issued (closed meanwhile). The
 * usual case is one round trip checked against the version read; an order that moved since takes the locking path.
 */
async function startIssuing(ctx: WorkContext<PlaceOrderPayload>, order: OrderEntity, supplier: string): Promise<LockedOrder | undefined> {
  const read = asRead(order);
  if (order.state === OrderState.Issuing && order.supplier === supplier) return read; // a re-run: recorded already
  const now = ctx.clock.now();
  const next = order.state === OrderState.Received ? startIssue(read.snapshot) : undefined;
  if (next?.ok) {
    const [saved] = await ctx.db.atomically(() => [
      saveOrderStatement(read, next.value, now),
      // Only on the row that save just moved (same version, now ISSUING).
      { sql: 'UPDATE orders SET supplier = ? WHERE id = ? AND version = ? AND state = ?', params: [supplier, order.id, read.version + 1, OrderState.Issuing] },
    ]);
    if (saved!.affected === 1) return { id: order.id, version: read.version + 1, snapshot: next.value };
  }
  return ctx.db.transaction(async (em) => {
    const r = await mutateOrder(em, order.id, now, startIssue);
    if (!r.ok && r.reason !== 'ISSUE_IN_PROGRESS') return undefined;
    await em.update(OrderEntity, { id: order.id }, { supplier });
    return { id: order.id, version: r.entity.version, snapshot: r.ok ? r.after : r.before };
  });
}

/**
 * ISSUED with the codes, its event and the TOP send, written with the item's completion: a version-checked save of
 * the ISSUING order this run started (or found), the rest in the same round trip. An order that moved since takes
 * the locking path, which records nothing when an earlier run already did.
 */
function issuedRecord(ctx: WorkContext<PlaceOrderPayload>, order: OrderEntity, issuing: LockedOrder, supplier: string, result: Extract<PlaceOrderResult, { kind: 'placed' }>): ResultRecord {
  // What eticket.send carries: every code with its full count, in the order stored (the order has no other codes).
  const codes = result.vouchers.map((v) => ({ code: v.code, num: v.quantity }));
  const writes = (em: EntityManager, now: number): SqlStatement[] => [
    insertStatement(
      em,
      VoucherEntity,
      result.vouchers.map((v) => ({ orderId: order.id, code: v.code, qrPayload: v.qrUrl ?? null, total: v.quantity, remaining: v.quantity, status: 'active' as const, createdAt: now })),
    ),
    {
      sql: 'UPDATE orders SET supplier_order_id = ?, supplier_sub_order_ids = ? WHERE id = ?',
      params: [result.supplierOrderId, result.supplierSubOrderIds.length ? JSON.stringify(result.supplierSubOrderIds) : null, order.id],
    },
    ...appendEventStatements(
      em,
      [
        {
          orderId: order.id,
          type: 'order.issued',
          payload: {
            taobaoOrderId: order.taobaoOrderId,
            supplier,
            supplierOrderId: result.supplierOrderId,
            quantity: order.purchased,
            maskedCodes: result.vouchers.map((v) => maskCode(v.code)),
            validStartTime: new Date(order.validStart),
            validEndTime: new Date(order.validEnd),
          },
        },
      ],
      ctx.clock,
    ),
    enqueueWorkStatement(
      em,
      { idempotencyKey: `send:${order.id}`, orderId: order.id, kind: TAOBAO_FLOW_WORK.taobaoSend, upstream: TAOBAO_UPSTREAM, payload: { orderId: order.id, codes } satisfies CodesCallPayload },
      ctx.clock,
    ),
  ];
  const issued = markIssued(issuing.snapshot);
  return {
    statements: (em) => {
      const now = ctx.clock.now();
      return issued.ok ? [saveOrderStatement(issuing, issued.value, now), ...writes(em, now)] : [];
    },
    // Nothing saved (the order moved since, or was not issuable as read): the locking path decides.
    held: ([saved]) => saved?.affected === 1,
    otherwise: async (em) => {
      const now = ctx.clock.now();
      const issued = await mutateOrder(em, order.id, now, markIssued);
      if (!issued.ok) return; // already recorded by an earlier run
      await runStatements(em, writes(em, now));
    },
  };
}

/** Payload of `taobao.failsend`. */
export interface FailSendPayload {
  readonly orderId: string;
  readonly errorCode: number;
  readonly errorMsg: string;
}

/** ISSUE_FAILED + its event + the `failsend` callback, in the caller's transaction. */
async function failIssue(em: EntityManager, orderId: string, reason: string, errorCode: number, errorMsg: string, clock: Clock): Promise<void> {
  const now = clock.now();
  const started = await mutateOrder(em, orderId, now, startIssue);
  if (!started.ok && started.reason !== 'ISSUE_IN_PROGRESS') return;
  const failed = await mutateOrder(em, orderId, now, markIssueFailed);
  if (!failed.ok) return;
  await appendEvent(em, { orderId, type: 'order.issue-failed', payload: { reason } }, clock);
  await enqueueWork(
    em,
    { idempotencyKey: `failsend:${orderId}`, orderId, kind: TAOBAO_FLOW_WORK.taobaoFailSend, upstream: TAOBAO_UPSTREAM, payload: { orderId, errorCode, errorMsg } satisfies FailSendPayload },
    clock,
  );
}

function supplierFault(err: unknown): WorkOutcome {
  if (err instanceof SupplierCallError) {
    return err.retryable ? { outcome: 'retry', error: err.message, ambiguous: err.ambiguous } : { outcome: 'park', error: err.message };
  }
  if (err instanceof CapabilityNotSupportedError) return { outcome: 'park', error: err.message };
  throw err;
}

/** Codes are the buyer's secret: events carry '12****89'. */
export function maskCode(code: string): string {
  if (code.length <= 4) return '*'.repeat(code.length);
  return code.slice(0, 2) + '*'.repeat(code.length - 4) + code.slice(-2);
}
