/**
 * The expiry sweep: issued orders whose validity has ended with units still available. Each order is handled
 * in its own transaction through mutateOrder (row lock + the domain's state check), so several replicas may
 * sweep at once: the second finds nothing available and moves on. Where the product allows expiry refunds
 * and the five-day window is still open, the refund request goes in the SAME transaction as the expiry, so
 * a crash cannot leave expired units that were meant to be refunded.
 */
import { In, LessThan, MoreThan } from 'typeorm';
import { canRefundExpired, hasValidityEnded } from '../domain/validity-rules';
import { expire as expireOp } from '../domain/order';
import { OrderState, type Clock } from '../domain/model';
import { mutateOrder } from '../orders/order-store';
import { appendEvent } from '../outbox/outbox';
import type { Database } from '../persistence/database';
import { OrderEntity } from '../persistence/entities/order.entity';
import type { ProductDirectory, ProductPolicy, RefundLog } from '../refunds/refund-ports';
import { placeRefundRequest } from '../refunds/refund-requests';
import { PeriodicTask } from '../support/periodic-task';

/** States in which an issued order may still hold available units. */
const SWEPT_STATES = [OrderState.Issued, OrderState.PartiallyConsumed, OrderState.RefundPendingAudit, OrderState.PartiallyRefunded];

export interface ExpirySchedulerOptions {
  readonly db: Database;
  readonly clock: Clock;
  readonly products: ProductDirectory;
  readonly log?: RefundLog & { error(obj: object, msg?: string): void };
  /** Time between sweeps (default 60 s). */
  readonly intervalMs?: number;
  /** Orders handled per sweep at most (default 100). */
  readonly batchSize?: number;
}

export interface SweepOutcome {
  readonly orderId: string;
  readonly expired: number;
  /** Our refund id when an expiry refund was requested. */
  readonly refundId?: string;
  /** Why no refund was requested, when none was. */
  readonly noRefund?: 'PRODUCT_UNKNOWN' | 'EXPIRY_REFUND_NOT_ALLOWED' | 'REFUND_WINDOW_CLOSED';
}

export class ExpiryScheduler {
  private readonly task: PeriodicTask;
  private readonly batchSize: number;

  constructor(private readonly opts: ExpirySchedulerOptions) {
    this.batchSize = Math.min(10_000, Math.max(1, opts.batchSize ?? 100));
    this.task = new PeriodicTask({
      intervalMs: Math.max(1, opts.intervalMs ?? 60_000),
      run: () => this.sweep(),
      onError: (err) => opts.log?.error({ err: err instanceof Error ? err.message : String(err) }, 'expiry sweep failed'),
    });
  }

  start(): void {
    this.task.start();
  }

  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One bounded sweep: at most `batchSize` orders, oldest validity end first. */
  async sweep(): Promise<SweepOutcome[]> {
    const now = this.opts.clock.now();
    const candidates = await this.opts.db.read((em) =>
      em.find(OrderEntity, {
        select: { id: true, outerIid: true, subOuterIid: true },
        where: { state: In(SWEPT_STATES), validEnd: LessThan(now), available: MoreThan(0) },
        order: { validEnd: 'ASC', id: 'ASC' },
        take: this.batchSize,
      }),
    );
    const outcomes: SweepOutcome[] = [];
    for (const { id, outerIid, subOuterIid } of candidates) {
      if (this.task.halted) break; // stop() was called: leave the rest to the next sweep
      try {
        // Resolved outside the transaction: the directory may read the database itself.
        const policy = await this.opts.products.resolve(outerIid, subOuterIid);
        const outcome = await this.expireOne(id, policy);
        if (outcome) outcomes.push(outcome);
      } catch (err) {
        // One bad order must not stop the sweep; it is tried again next time.
        this.opts.log?.error({ orderId: id, err: err instanceof Error ? err.message : String(err) }, 'expiring order failed');
      }
    }
    return outcomes;
  }

  /** Expires one order (and requests its expiry refund where allowed); undefined when another replica did it. */
  expireOne(orderId: string, policy: ProductPolicy | undefined): Promise<SweepOutcome | undefined> {
    const { db, clock } = this.opts;
    return db.transaction(async (em) => {
      const now = clock.now();
      const mutated = await mutateOrder(em, orderId, now, (o) => expireOp(o, now));
      if (!mutated.ok) return undefined; // already expired, not ended, or no longer issued: nothing to do
      const expired = mutated.after.ledger.expired - mutated.before.ledger.expired;
      await appendEvent(em, { orderId, type: 'order.expired', payload: { expiredQuantity: expired }, occurredAt: now }, clock);

      const o = mutated.entity;
      let outcome: SweepOutcome;
      const validity = { start: o.validStart, end: o.validEnd };
      if (!policy) outcome = { orderId, expired, noRefund: 'PRODUCT_UNKNOWN' };
      else if (!policy.expiryRefund.allowed) outcome = { orderId, expired, noRefund: 'EXPIRY_REFUND_NOT_ALLOWED' };
      else if (!hasValidityEnded(validity, now) || !canRefundExpired(validity, now)) outcome = { orderId, expired, noRefund: 'REFUND_WINDOW_CLOSED' };
      else {
        const placed = await placeRefundRequest(em, { orderId, quantity: expired, origin: 'expiry' }, { clock, expiryRatioBasisPoints: policy.expiryRefund.ratioBasisPoints });
        if (!placed.ok) throw new Error(`expiry refund of ${expired} unit(s) rejected: ${placed.reason}`);
        outcome = { orderId, expired, refundId: placed.refund.id };
      }
      this.opts.log?.info({ ...outcome }, 'order expired');
      return outcome;
    });
  }
}
