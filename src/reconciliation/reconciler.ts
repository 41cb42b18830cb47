/**
 * Reconciliation: per order, our ledger against the supplier's view (queryOrder) and Taobao's codes
 * (eticket.codes.get). Differences are drifts, reported (report, `reconciliation_drift_total{kind}`, and an
 * operator exception + `exception.raised` event for each one left to operators). Only a safe drift is healed,
 * through the normal path: units the supplier saw admitted that we missed go through onSupplierAdmission (the
 * same write-off + Taobao consume a supplier admission callback would have made). Everything else is for people.
 *
 * Bounded: a batch size, one order at a time, a deadline per outside call, and one run at a time per process.
 * Batches go round the eligible orders by id (an in-memory cursor), so every order gets its turn.
 */
import { In, IsNull, MoreThan, Not, type EntityManager } from 'typeorm';
import { OrderState, type Clock, type Ledger } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import { onSupplierAdmission } from '../gates/admission-desk';
import { ledgerOf } from '../orders/order-store';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import { VoucherEntity } from '../persistence/entities/voucher.entity';
import { WriteOffEntity } from '../persistence/entities/write-off.entity';
import { raiseOperatorException } from '../refunds/operator-exceptions';
import { supplierRef } from '../refunds/refund-work';
import type { CodesGetResponse, TopOutcome } from '../taobao/top-client';
import { UnknownSupplierStateError, type SupplierAdapter, type SupplierOrderStatus } from '../suppliers/supplier-adapter';
import { STATE_MAPPING_VERSION, stateTable } from '../state-mapping/state-table';
import { raiseUnknownSupplierState, raiseUnmappedState } from '../state-mapping/unmapped-states';

export const RECONCILIATION_DRIFT = 'reconciliation_drift';

export type DriftKind =
  | 'SUPPLIER_USED_MORE'
  | 'SUPPLIER_USED_LESS'
  | 'SUPPLIER_REFUNDED_MISMATCH'
  | 'SUPPLIER_PURCHASED_MISMATCH'
  | 'SUPPLIER_STATE_INCONSISTENT'
  | 'TAOBAO_CONSUMED_MISMATCH'
  | 'TAOBAO_CODE_MISSING'
  | 'TAOBAO_CODE_VOID'
  | 'UNMAPPED_STATE';

export interface Drift {
  readonly kind: DriftKind;
  readonly detail: string;
  readonly ours?: number;
  readonly theirs?: number;
  readonly healed: boolean;
}

export interface UnitCounts {
  readonly purchased: number;
  readonly used: number;
  readonly refunded: number;
  readonly remaining: number;
}

export interface OrderReconciliation {
  readonly orderId: string;
  readonly supplier: string;
  readonly state: OrderState;
  readonly ours: UnitCounts;
  readonly supplierCounts?: UnitCounts;
  readonly supplierState?: string;
  readonly supplierNeutralStatus?: string;
  readonly taobaoRemaining?: number;
  readonly drifts: Drift[];
  readonly problems: string[];
}

export interface ReconciliationReport {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly ordersChecked: number;
  readonly ordersInStep: number;
  readonly ordersWithProblems: number;
  readonly driftCounts: Record<string, number>;
  readonly healed: number;
  /** Orders with drift or problems. */
  readonly orders: OrderReconciliation[];
  readonly stateMappingVersion: number;
}

/** The part of TopClient reconciliation uses. */
export interface TaobaoCodes {
  codesGet(req: { orderId: string }): Promise<TopOutcome<CodesGetResponse>>;
}

export interface ReconcilerDeps {
  readonly db: Database;
  readonly clock: Clock;
  readonly suppliers: { get(instanceCode: string): SupplierAdapter | undefined };
  /** Absent (TOP sandbox mode): Taobao is not compared. */
  readonly taobao?: TaobaoCodes;
  readonly metrics?: {
    readonly reconciliationDrift: { inc(labels: { kind: string }): void };
    readonly unmappedOutsideStates: { inc(labels: { system: string }): void };
  };
  readonly log?: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  readonly batchSize?: number;
  /** Orders whose validity ended longer ago than this are left alone. */
  readonly lookbackMs?: number;
  /** Deadline of one outside call. */
  readonly callTimeoutMs?: number;
}

/** Orders past issuing: they have a supplier order and codes at Taobao. */
const RECONCILED_STATES: OrderState[] = [
  OrderState.Issued,
  OrderState.PartiallyConsumed,
  OrderState.Consumed,
  OrderState.RefundPendingAudit,
  OrderState.PartiallyRefunded,
  OrderState.Refunded,
  OrderState.Expired,
  OrderState.Closed,
];

function ourCounts(l: Ledger): UnitCounts {
  return { purchased: l.purchased, used: l.consumed, refunded: l.refunded, remaining: l.available + l.expired + l.refundPending };
}

function supplierCounts(s: SupplierOrderStatus, ours: Ledger): UnitCounts {
  return {
    purchased: s.purchasedQuantity ?? ours.purchased,
    used: s.usedQuantity,
    refunded: s.refundedQuantity,
    remaining: s.refundableQuantity,
  };
}

function problemText(err: unknown): string {
  return redactPersonalData(err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300);
}

export class Reconciler {
  private cursor = '';
  private running: Promise<ReconciliationReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly batchSize: number;
  private readonly lookbackMs: number;
  private readonly callTimeoutMs: number;

  constructor(private readonly deps: ReconcilerDeps) {
    this.batchSize = deps.batchSize ?? 50;
    this.lookbackMs = deps.lookbackMs ?? 30 * 86_400_000;
    this.callTimeoutMs = deps.callTimeoutMs ?? 15_000;
  }

  /** Runs every `intervalMs` (0: never); one run at a time. */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.runBatch().catch((err: unknown) => this.deps.log?.error({ err }, 'reconciliation run failed'));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** The next `size` eligible orders in turn. */
  async runBatch(size = this.batchSize): Promise<ReconciliationReport> {
    const n = Math.min(Math.max(1, size), 1000);
    const since = this.deps.clock.now() - this.lookbackMs;
    const pick = (after: string) =>
      this.deps.db.read((em) =>
        em.find(OrderEntity, {
          select: { id: true },
          where: { id: MoreThan(after), state: In(RECONCILED_STATES), supplierOrderId: Not(IsNull()), validEnd: MoreThan(since) },
          order: { id: 'ASC' },
          take: n,
        }),
      );
    let rows = await pick(this.cursor);
    if (rows.length < n && this.cursor !== '') {
      // Wrap around to the start.
      const more = await pick('');
      const seen = new Set(rows.map((r) => r.id));
      rows = [...rows, ...more.filter((r) => !seen.has(r.id))].slice(0, n);
    }
    this.cursor = rows.length > 0 ? rows[rows.length - 1]!.id : '';
    return this.reconcileOrders(rows.map((r) => r.id));
  }

  /** Reconciles the given orders (unknown ids are skipped); one run at a time. */
  async reconcileOrders(orderIds: readonly string[]): Promise<ReconciliationReport> {
    while (this.running) await this.running.catch(() => undefined);
    const run = this.run(orderIds);
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = undefined;
    }
  }

  private async run(orderIds: readonly string[]): Promise<ReconciliationReport> {
    const startedAt = this.deps.clock.now();
    const results: OrderReconciliation[] = [];
    for (const id of orderIds) {
      const r = await this.reconcileOne(id);
      if (r) results.push(r);
    }
    const driftCounts: Record<string, number> = {};
    let healed = 0;
    for (const r of results) {
      for (const d of r.drifts) {
        driftCounts[d.kind] = (driftCounts[d.kind] ?? 0) + 1;
        if (d.healed) healed++;
        this.deps.metrics?.reconciliationDrift.inc({ kind: d.kind });
      }
    }
    const report: ReconciliationReport = {
      startedAt,
      endedAt: this.deps.clock.now(),
      ordersChecked: results.length,
      ordersInStep: results.filter((r) => r.drifts.length === 0 && r.problems.length === 0).length,
      ordersWithProblems: results.filter((r) => r.problems.length > 0).length,
      driftCounts,
      healed,
      orders: results.filter((r) => r.drifts.length > 0 || r.problems.length > 0),
      stateMappingVersion: STATE_MAPPING_VERSION,
    };
    if (results.length > 0) {
      this.deps.log?.info({ checked: report.ordersChecked, inStep: report.ordersInStep, drifts: driftCounts, healed, problems: report.ordersWithProblems }, 'reconciliation run');
    }
    return report;
  }

  private async load(orderId: string) {
    return this.deps.db.read(async (em) => {
      const order = await em.findOne(OrderEntity, { where: { id: orderId } });
      if (!order) return undefined;
      const vouchers = await em.find(VoucherEntity, { where: { orderId }, order: { id: 'ASC' } });
      const writeOffs = await em.find(WriteOffEntity, { where: { orderId } });
      return { order, vouchers, writeOffs };
    });
  }

  private unmappedDeps() {
    return { clock: this.deps.clock, counter: this.deps.metrics?.unmappedOutsideStates };
  }

  private async reconcileOne(orderId: string): Promise<OrderReconciliation | undefined> {
    const loaded = await this.load(orderId);
    if (!loaded) return undefined;
    let { order } = loaded;
    const drifts: Drift[] = [];
    const problems: string[] = [];
    let ledger = ledgerOf(order);
    const before = ledger;
    let sCounts: UnitCounts | undefined;
    let supplierState: string | undefined;
    let neutral: string | undefined;

    // ---- the supplier ----
    const adapter = order.supplier ? this.deps.suppliers.get(order.supplier) : undefined;
    if (!adapter) problems.push(`no supplier adapter for instance ${order.supplier ?? '(none)'}`);
    else if (!order.supplierOrderId) problems.push('no supplier order id');
    else {
      let status: SupplierOrderStatus | undefined;
      try {
        status = await adapter.queryOrder(supplierRef(order), { signal: AbortSignal.timeout(this.callTimeoutMs) });
      } catch (err) {
        if (err instanceof UnknownSupplierStateError) {
          await this.deps.db.transaction((em) => raiseUnknownSupplierState(em, err, order.id, this.unmappedDeps()));
          drifts.push({ kind: 'UNMAPPED_STATE', detail: `supplier ${err.field} '${redactPersonalData(err.value).slice(0, 64)}' is not in the state table`, healed: false });
        } else {
          problems.push(`supplier queryOrder failed: ${problemText(err)}`);
        }
      }
      if (status) {
        supplierState = status.supplierState;
        neutral = status.neutralStatus;
        sCounts = supplierCounts(status, ledger);
        // Admissions the supplier saw that we missed: safe to heal through the normal supplier-admission path.
        if (status.usedQuantity > ledger.consumed) {
          const missed = status.usedQuantity - ledger.consumed;
          await this.deps.db.transaction((em) =>
            onSupplierAdmission(
              em,
              { ourOrderCode: order.id, dedupKey: `reconcile:${order.id}:used:${status.usedQuantity}`, count: missed },
              { instanceCode: adapter.instanceCode, clock: this.deps.clock, receivedAt: this.deps.clock.now() },
            ),
          );
          const after = await this.load(order.id);
          if (after) {
            order = after.order;
            ledger = ledgerOf(order);
            loaded.writeOffs.splice(0, loaded.writeOffs.length, ...after.writeOffs);
          }
          const healed = ledger.consumed === status.usedQuantity;
          drifts.push({
            kind: 'SUPPLIER_USED_MORE',
            detail: healed ? `supplier saw ${missed} admission(s) we missed; recorded as supplier admissions` : `supplier saw ${missed} admission(s) we missed; not all could be honoured`,
            ours: before.consumed,
            theirs: status.usedQuantity,
            healed,
          });
        } else if (status.usedQuantity < ledger.consumed) {
          drifts.push({ kind: 'SUPPLIER_USED_LESS', detail: 'we count more admissions than the supplier', ours: ledger.consumed, theirs: status.usedQuantity, healed: false });
        }
        // A refund the supplier approved while our audit is still pending is in flight, not drift.
        const refundedInFlight = status.refundedQuantity > ledger.refunded && status.refundedQuantity <= ledger.refunded + ledger.refundPending;
        if (status.refundedQuantity !== ledger.refunded && !refundedInFlight) {
          drifts.push({ kind: 'SUPPLIER_REFUNDED_MISMATCH', detail: 'refunded units differ', ours: ledger.refunded, theirs: status.refundedQuantity, healed: false });
        }
        if (status.purchasedQuantity !== undefined && status.purchasedQuantity !== ledger.purchased) {
          drifts.push({ kind: 'SUPPLIER_PURCHASED_MISMATCH', detail: 'purchased units differ', ours: ledger.purchased, theirs: status.purchasedQuantity, healed: false });
        }
        const countsAgree = drifts.every((d) => d.healed);
        if (countsAgree && status.neutralStatus !== undefined && !refundedInFlight) {
          const ok = stateTable.consistent('supplier', 'neutral_status', status.neutralStatus, order.state);
          if (ok === false) {
            drifts.push({ kind: 'SUPPLIER_STATE_INCONSISTENT', detail: `supplier says ${status.neutralStatus} (${status.supplierState}); we are ${order.state}`, healed: false });
          }
        }
      }
    }

    // ---- Taobao ----
    let taobaoRemaining: number | undefined;
    if (this.deps.taobao && order.taobaoOrderId) {
      let outcome: TopOutcome<CodesGetResponse> | undefined;
      try {
        outcome = await this.deps.taobao.codesGet({ orderId: order.taobaoOrderId });
      } catch (err) {
        problems.push(`Taobao codes.get failed: ${problemText(err)}`);
      }
      if (outcome && outcome.kind !== 'ok') problems.push(`Taobao codes.get: ${outcome.kind} ${'subCode' in outcome ? (outcome.subCode ?? '') : ''}`.trim());
      if (outcome?.kind === 'ok') {
        const taobaoCodes = new Map(outcome.body.codes.map((c) => [c.code, c]));
        let consumedAtTaobao = 0;
        taobaoRemaining = 0;
        for (const v of loaded.vouchers) {
          const t = taobaoCodes.get(v.code);
          if (!t) {
            drifts.push({ kind: 'TAOBAO_CODE_MISSING', detail: `code …${v.code.slice(-4)} is not at Taobao`, healed: false });
            continue;
          }
          const statusText = t.status === undefined ? undefined : String(t.status);
          const mapped = statusText === undefined ? undefined : stateTable.lookup('taobao', 'code_status', statusText);
          if (statusText !== undefined && !mapped) {
            await this.deps.db.transaction((em) =>
              raiseUnmappedState(em, { system: 'taobao', field: 'code_status', value: statusText, context: 'eticket.codes.get', orderId: order.id }, this.unmappedDeps()),
            );
            drifts.push({ kind: 'UNMAPPED_STATE', detail: `Taobao code_status '${statusText}' is not in the state table`, healed: false });
            continue;
          }
          const voided = statusText === '0';
          if (voided) {
            if (v.remaining > 0 && ledger.available > 0) drifts.push({ kind: 'TAOBAO_CODE_VOID', detail: `code …${v.code.slice(-4)} is void at Taobao but has ${v.remaining} usable unit(s) here`, ours: v.remaining, theirs: 0, healed: false });
            continue;
          }
          taobaoRemaining += t.num;
          consumedAtTaobao += Math.max(0, v.total - t.num);
        }
        const live = loaded.writeOffs.filter((w) => w.state !== 'failed' && w.state !== 'reversed');
        const confirmed = live.filter((w) => w.state === 'confirmed').reduce((s, w) => s + w.count, 0);
        // Consumes still on their way to Taobao (write-off work) may or may not have landed.
        const inFlight = live.filter((w) => w.state === 'recorded').reduce((s, w) => s + w.count, 0);
        const anyVoid = loaded.vouchers.some((v) => taobaoCodes.get(v.code)?.status === 0);
        if (!anyVoid && (consumedAtTaobao < confirmed || consumedAtTaobao > confirmed + inFlight)) {
          drifts.push({ kind: 'TAOBAO_CONSUMED_MISMATCH', detail: `Taobao counts ${consumedAtTaobao} consumed unit(s); we confirmed ${confirmed} (+${inFlight} in flight)`, ours: confirmed, theirs: consumedAtTaobao, healed: false });
        }
      }
    }

    // Drifts left to people: one operator exception each (not repeated while the same one is open).
    const open = drifts.filter((d) => !d.healed && d.kind !== 'UNMAPPED_STATE');
    if (open.length > 0) {
      await this.deps.db.transaction(async (em) => {
        for (const d of open) await this.raiseDrift(em, order.id, d);
      });
    }
    if (drifts.length > 0 || problems.length > 0) {
      this.deps.log?.warn({ orderId: order.id, drifts: drifts.map((d) => d.kind), problems: problems.length }, 'reconciliation drift');
    }
    return {
      orderId: order.id,
      supplier: order.supplier ?? '',
      state: order.state,
      ours: ourCounts(ledger),
      supplierCounts: sCounts,
      supplierState,
      supplierNeutralStatus: neutral,
      taobaoRemaining,
      drifts,
      problems,
    };
  }

  private async raiseDrift(em: EntityManager, orderId: string, d: Drift): Promise<void> {
    const detail = redactPersonalData(JSON.stringify({ kind: d.kind, ours: d.ours ?? null, theirs: d.theirs ?? null, detail: d.detail }));
    const already = await em.findOne(OperatorExceptionEntity, { where: { kind: RECONCILIATION_DRIFT, orderId, detail, resolvedAt: IsNull() }, select: { id: true } });
    if (already) return;
    await raiseOperatorException(em, { orderId, kind: RECONCILIATION_DRIFT, detail }, this.deps.clock);
  }
}
