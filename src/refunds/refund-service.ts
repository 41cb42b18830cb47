/**
 * Refunds for internal callers: what is refundable now and why, and an idempotent cancellation keyed by the
 * caller's request id (the same id again returns the same refund, never a second one).
 */
import { refundableNow, type RefundableQuantity } from '../domain/order';
import type { Clock, Ledger, OrderState } from '../domain/model';
import { ledgerOf, loadOrderForUpdate, OrderNotFoundError, phaseOf } from '../orders/order-store';
import type { Database } from '../persistence/database';
import { OrderEntity } from '../persistence/entities/order.entity';
import { RefundRequestEntity } from '../persistence/entities/refund-request.entity';
import { isUniqueViolation } from '../persistence/errors';
import type { ProductDirectory, RefundLog } from './refund-ports';
import { placeRefundRequest, toRefundView, type RefundView } from './refund-requests';

export interface RefundableView {
  readonly orderId: string;
  readonly state: OrderState;
  readonly ledger: Ledger;
  readonly refundable: RefundableQuantity;
}

export type CancelRejectionReason =
  | 'ORDER_NOT_FOUND'
  | 'INVALID_QUANTITY'
  | 'ORDER_NOT_ISSUED'
  | 'QUANTITY_EXCEEDS_REFUNDABLE'
  | 'ALREADY_REFUNDED'
  | 'CONSUMED'
  | 'OUTSIDE_REFUND_WINDOW'
  | 'REQUEST_ID_REUSED';

export type CancelOrderResult =
  | { readonly ok: true; readonly refund: RefundView; /** True when this request id had already been served. */ readonly replayed: boolean }
  | {
      readonly ok: false;
      readonly reason: CancelRejectionReason;
      readonly message: string;
      /** refundable (count) and expiredRefundDeadline (epoch ms) where they explain the refusal. */
      readonly details: Readonly<Record<string, number | string>>;
    };

export interface CancelOrderInput {
  readonly orderId: string;
  readonly quantity: number;
  readonly callerRequestId: string;
}

export class RefundService {
  constructor(private readonly deps: { db: Database; clock: Clock; log?: RefundLog; products?: ProductDirectory }) {}

  /** Ledger and refundable quantity now; undefined when there is no such order. */
  getRefundable(orderId: string): Promise<RefundableView | undefined> {
    return this.deps.db.read(async (em) => {
      const o = await em.findOne(OrderEntity, { where: { id: orderId } });
      if (!o) return undefined;
      const ledger = ledgerOf(o);
      const refundable = refundableNow(
        { state: o.state, phase: phaseOf(o.state, ledger), ledger, validity: { start: o.validStart, end: o.validEnd }, writeOffs: [] },
        this.deps.clock.now(),
      );
      return { orderId: o.id, state: o.state, ledger, refundable };
    });
  }

  async cancelOrder(input: CancelOrderInput): Promise<CancelOrderResult> {
    // The product's expiry ratio (for expired units' buyer amount) is looked up before the transaction.
    const expiryRatioBasisPoints = await this.expiryRatioOf(input.orderId);
    try {
      return await this.deps.db.transaction(async (em) => {
        let loaded;
        try {
          loaded = await loadOrderForUpdate(em, input.orderId);
        } catch (err) {
          if (err instanceof OrderNotFoundError) return refusal('ORDER_NOT_FOUND', `order ${JSON.stringify(input.orderId)} not found`);
          throw err;
        }
        // Looked up under the order's lock, so a concurrent retry of the same id waits and then finds it.
        const replay = await this.replayOf(em.findOne(RefundRequestEntity, { where: { callerRequestId: input.callerRequestId } }), input);
        if (replay) return replay;

        const now = this.deps.clock.now();
        const refusedUpFront = checkRefundable(loaded.snapshot.ledger, refundableNow(loaded.snapshot, now), input.quantity);
        if (refusedUpFront) return refusedUpFront;
        const placed = await placeRefundRequest(em, { orderId: input.orderId, quantity: input.quantity, origin: 'internal', callerRequestId: input.callerRequestId }, { clock: this.deps.clock, expiryRatioBasisPoints });
        if (!placed.ok) return refusal('QUANTITY_EXCEEDS_REFUNDABLE', placed.message, numericDetails(placed.details));
        this.deps.log?.info({ orderId: input.orderId, refundId: placed.refund.id, quantity: input.quantity, requestId: input.callerRequestId }, 'order cancellation requested');
        return { ok: true as const, refund: placed.refund, replayed: false };
      });
    } catch (err) {
      // Two first tries of one request id raced past the lookup: the unique index let one win; serve its refund.
      if (!isUniqueViolation(err)) throw err;
      const replay = await this.replayOf(
        this.deps.db.read((em) => em.findOne(RefundRequestEntity, { where: { callerRequestId: input.callerRequestId } })),
        input,
      );
      if (!replay) throw err;
      return replay;
    }
  }

  private async expiryRatioOf(orderId: string): Promise<number | undefined> {
    if (!this.deps.products) return undefined;
    const o = await this.deps.db.read((em) => em.findOne(OrderEntity, { where: { id: orderId }, select: { id: true, outerIid: true, subOuterIid: true } }));
    if (!o) return undefined;
    return (await this.deps.products.resolve(o.outerIid, o.subOuterIid))?.expiryRefund.ratioBasisPoints;
  }

  private async replayOf(found: Promise<RefundRequestEntity | null>, input: CancelOrderInput): Promise<CancelOrderResult | undefined> {
    const row = await found;
    if (!row) return undefined;
    if (row.orderId !== input.orderId || row.quantity !== input.quantity) {
      return refusal('REQUEST_ID_REUSED', `request id ${JSON.stringify(input.callerRequestId)} was already used for a different cancellation`);
    }
    return { ok: true, refund: toRefundView(row), replayed: true };
  }
}

/** The precise reason a cancellation cannot be taken, or undefined when it can. */
export function checkRefundable(ledger: Ledger, refundable: RefundableQuantity, quantity: number): CancelOrderResult | undefined {
  if (!Number.isSafeInteger(quantity) || quantity <= 0) return refusal('INVALID_QUANTITY', `quantity must be a positive integer, got ${quantity}`);
  if (refundable.reason === 'NOT_ISSUED') return refusal('ORDER_NOT_ISSUED', 'the order has no codes yet');
  if (quantity <= refundable.count) return undefined;
  const details = { refundable: refundable.count, expiredRefundDeadline: refundable.expiredRefundDeadline };
  if (refundable.count === 0) {
    if (refundable.reason === 'EXPIRED_REFUND_DEADLINE_PASSED') {
      return refusal('OUTSIDE_REFUND_WINDOW', `the expired units could be refunded until ${new Date(refundable.expiredRefundDeadline).toISOString()}`, details);
    }
    const refunding = ledger.refunded + ledger.refundPending;
    // Nothing unused: refunds (done or under audit) took what admissions left; with none, admissions took it all.
    if (refunding > 0) return refusal('ALREADY_REFUNDED', 'every unused unit is refunded or awaiting its refund audit', details);
    if (ledger.consumed > 0) return refusal('CONSUMED', 'every unit was admitted', details);
  }
  return refusal('QUANTITY_EXCEEDS_REFUNDABLE', `asked to refund ${quantity} but only ${refundable.count} refundable (${refundable.reason})`, details);
}

function refusal(reason: CancelRejectionReason, message: string, details: Record<string, number | string> = {}): CancelOrderResult {
  return { ok: false, reason, message, details };
}

function numericDetails(d: Record<string, unknown> | undefined): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(d ?? {})) if (typeof v === 'number' || typeof v === 'string') out[k] = v;
  return out;
}
