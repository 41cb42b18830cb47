/**
 * Shared set-up for the refund and expiry tests: a fresh database, an issued order placed at a real (sandbox)
 * supplier adapter, a settable clock, a work runner that drains due items, and the ledger check every test
 * ends with.
 */
import assert from 'node:assert/strict';
import { assertLedger, newLedger } from '../../src/domain/ledger';
import { admit } from '../../src/domain/order';
import { OrderState, type Ledger } from '../../src/domain/model';
import { listOrderEvents } from '../../src/outbox/outbox';
import { mutateOrder, ledgerOf } from '../../src/orders/order-store';
import type { Database } from '../../src/persistence/database';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { RefundRequestEntity } from '../../src/persistence/entities/refund-request.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { OrderRepository } from '../../src/persistence/order-repository';
import type { ProductDirectory, ProductPolicy, SupplierDirectory } from '../../src/refunds/refund-ports';
import { registerRefundWork, type RefundWorkDeps } from '../../src/refunds/refund-work';
import { SandboxAdapter, type SandboxConfig } from '../../src/suppliers/sandbox/sandbox-adapter';
import type { SupplierAdapter } from '../../src/suppliers/supplier-adapter';
import { WorkRunner } from '../../src/work/work-runner';

export const DAY = 86_400_000;
export const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);
export const UNIT_PRICE_FEN = 8800;

export class TestClock {
  constructor(public t: number = T0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export const silentLog = { info() {}, warn() {}, error() {} };

export function directoryOf(...adapters: SupplierAdapter[]): SupplierDirectory {
  const map = new Map(adapters.map((a) => [a.instanceCode, a]));
  return { get: (code) => map.get(code) };
}

export function productsOf(entries: Record<string, ProductPolicy>): ProductDirectory {
  return { resolve: async (outer) => (outer === null ? undefined : entries[outer]) };
}

export function sandbox(config: SandboxConfig = {}, clock?: TestClock): SandboxAdapter {
  return new SandboxAdapter({ instanceCode: 'sbx-test', ...config }, clock);
}

let seq = 0;

/** An issued order of `purchased` units, placed at the sandbox so the supplier knows it too. */
export async function issuedOrder(
  db: Database,
  supplier: SandboxAdapter,
  opts: { purchased?: number; validEnd?: number; outerIid?: string; now?: number } = {},
): Promise<string> {
  const purchased = opts.purchased ?? 3;
  const now = opts.now ?? T0;
  const id = `o_test${String(++seq).padStart(4, '0')}${Math.random().toString(36).slice(2, 8)}`;
  const placed = await supplier.placeOrder({
    ourOrderCode: id,
    visitorName: '张三',
    mobile: '13800138000',
    supplierTicketType: 'PST1',
    quantity: purchased,
    unitPriceFen: UNIT_PRICE_FEN,
    visitDate: '2026-11-01',
  });
  assert.equal(placed.kind, 'placed');
  if (placed.kind !== 'placed') throw new Error('unreachable');
  await new OrderRepository(db).insert({
    id,
    taobaoOrderId: `9${Date.now()}${String(seq).padStart(5, "0")}`,
    token: 'tok',
    outerIid: opts.outerIid ?? 'YZY-ADULT',
    unitPriceFen: UNIT_PRICE_FEN,
    totalFeeFen: UNIT_PRICE_FEN * purchased,
    noticeType: 0,
    mobileMasked: '138****8000',
    validStart: T0,
    validEnd: opts.validEnd ?? T0 + 30 * DAY,
    supplier: supplier.instanceCode,
    supplierOrderId: placed.supplierOrderId,
    supplierSubOrderIds: placed.supplierSubOrderIds,
    state: OrderState.Issued,
    ledger: newLedger(purchased),
    createdAt: now,
  });
  return id;
}

/** Visitors admitted at the gate (our side and the sandbox's). */
export async function admitUnits(db: Database, supplier: SandboxAdapter, orderId: string, k: number, now: number): Promise<void> {
  await db.transaction(async (em) => {
    const r = await mutateOrder(em, orderId, now, (o) => admit(o, k, now, `serial-${orderId}-${now}-${k}`));
    assert.ok(r.ok, `admission refused: ${!r.ok ? r.reason : ''}`);
  });
  assert.ok(supplier.recordAdmission(orderId, k));
}

export function refundRunner(db: Database, clock: TestClock, deps: RefundWorkDeps): WorkRunner {
  const runner = new WorkRunner({ db, clock, pollIntervalMs: 10, backoffBaseMs: 1000, backoffMaxMs: 1000, random: () => 0, maxAttempts: 3 });
  registerRefundWork(runner, deps);
  return runner;
}

/** Runs every item due now, round after round (bounded). */
export async function drain(runner: WorkRunner): Promise<void> {
  for (let i = 0; i < 20; i++) if ((await runner.runOnce()) === 0) return;
  throw new Error('work did not drain in 20 rounds');
}

export async function ledger(db: Database, orderId: string): Promise<Ledger> {
  const o = await db.read((em) => em.findOneOrFail(OrderEntity, { where: { id: orderId } }));
  return ledgerOf(o);
}

export async function refundsOf(db: Database, orderId: string): Promise<RefundRequestEntity[]> {
  return db.read((em) => em.find(RefundRequestEntity, { where: { orderId }, order: { createdAt: 'ASC' } }));
}

export async function exceptionsOf(db: Database, orderId: string | null): Promise<OperatorExceptionEntity[]> {
  return db.read((em) => em.find(OperatorExceptionEntity, { where: orderId === null ? {} : { orderId }, order: { id: 'ASC' } }));
}

export async function eventTypes(db: Database, orderId: string): Promise<string[]> {
  return db.read(async (em) => (await listOrderEvents(em, orderId)).map((e) => e.type));
}

export async function workItems(db: Database): Promise<WorkItemEntity[]> {
  return db.read((em) => em.find(WorkItemEntity, { order: { id: 'ASC' } }));
}

/** The ledger equation holds, with no negative bucket, on every order in the database. */
export async function assertEveryLedgerHolds(db: Database): Promise<void> {
  const orders = await db.read((em) => em.find(OrderEntity));
  assert.ok(orders.length > 0, 'there are orders to check');
  for (const o of orders) assert.doesNotThrow(() => assertLedger(ledgerOf(o)), `ledger of ${o.id}`);
}
