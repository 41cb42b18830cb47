/**
 * Admissions at the gate (核销): check, redeem, offline uploads, reversal, and the admissions suppliers report
 * from their own gates - all through ONE write-off path.
 *
 * An admission is decided in a short transaction that makes no outside call: lock the order, decide
 * (admission-rules.ts), take the units with a conditional `UPDATE vouchers … WHERE remaining >= k` (affected rows
 * checked), save the ledger (version-checked, as mutateOrder does), insert the write-off under a fresh consume serial,
 * and write the `write-off.recorded` event and the `taobao.consume` work item. Taobao hears of it afterwards
 * (write-off-work.ts). On MariaDB that is two round trips besides START and COMMIT (admitInArrivalOrder), and Redeems
 * arriving together share one such transaction (AdmissionDesk.redeem).
 *
 * Locks: the order row first, then its vouchers - the same order as every other writer of an order.
 */
import { createHash } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { CheckMethod, systemClock, type Clock } from '../domain/model';
import { admit, reverseAdmission, type OrderSnapshot } from '../domain/order';
import { maskIdCard } from '../domain/personal-data';
import { reverseDeadline } from '../domain/write-off-rules';
import { appendEvent, appendEventStatements, exceptionRaised, type AppendEventInput, type OrderEventType } from '../outbox/outbox';
import {
  checkOrdersSaved,
  ledgerOf,
  loadOrderForUpdate,
  lockedOrderOf,
  lockOrdersStatement,
  OrderConcurrentUpdateError,
  OrderNotFoundError,
  phaseOf,
  saveOrderSnapshot,
  saveOrdersStatement,
  type LockedOrder,
} from '../orders/order-store';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import { VoucherEntity } from '../persistence/entities/voucher.entity';
import { WriteOffEntity, type WriteOffSource } from '../persistence/entities/write-off.entity';
import { isUniqueViolation } from '../persistence/errors';
import { newId } from '../persistence/ids';
import { asOneInsert, insertStatement, runStatements, type SqlStatement, type StatementResult } from '../persistence/statement-batch';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import type { ProductMapping } from '../suppliers/product-catalog';
import { enqueueWork, enqueueWorkStatement } from '../work/work-queue';
import {
  ADMISSION_TEXT,
  codeFromQrPayload,
  decideAdmission,
  type AdmissionReason,
  type DeviceScope,
} from './admission-rules';
import { GateDeviceEntity } from './gate-device.entity';
import { GateOfflineAdmissionEntity } from './gate-offline-admission.entity';
import type { GateDeviceView } from './device-registry';

/** Work kinds of the gate flows. */
export const GATE_WORK = { consume: 'taobao.consume', reverse: 'taobao.reverse' } as const;
export const TAOBAO_UPSTREAM = 'taobao';
/** Operator exception kinds raised here. */
export const GATE_EXCEPTIONS = {
  conflict: 'write_off_conflict',
  failed: 'write_off_failed',
  reversedUnknown: 'write_off_consume_unknown',
} as const;

/** The product directory (src/suppliers/product-directory.ts), structurally. */
export interface ProductLookup {
  resolve(outerIid: string | null, subOuterIid: string | null): Promise<ProductMapping | undefined>;
}

export type Presented =
  | { readonly kind: 'code'; readonly code: string }
  | { readonly kind: 'qr'; readonly payload: string }
  | { readonly kind: 'id_card'; readonly idCard: string; readonly orderId?: string };

export interface IdCardCandidate {
  readonly orderId: string;
  readonly itemTitle: string;
  readonly idCardMasked: string;
  readonly visitorNameMasked: string;
  readonly available: number;
  readonly validStart: number;
  readonly validEnd: number;
}

export interface AdmissionAnswer {
  readonly reason: AdmissionReason;
  readonly message: string;
  readonly remaining: number;
  readonly writeOffId?: string;
  readonly orderId?: string;
  readonly candidates?: readonly IdCardCandidate[];
  readonly replayed?: boolean;
  readonly validity?: { readonly start: number; readonly end: number };
}

export interface ReverseAnswer {
  readonly reason: AdmissionReason;
  readonly message: string;
  readonly remaining: number;
  readonly reverseDeadline?: number;
}

export interface OfflineAdmissionInput {
  readonly presented: Presented;
  readonly count: number;
  readonly nonce: string;
  readonly admittedAt: number;
}

export interface AdmissionDeskDeps {
  readonly db: Database;
  readonly products: ProductLookup;
  readonly protector: PersonalDataProtector;
  readonly clock?: Clock;
}

/** Where a presented credential led: one voucher of one order, or an answer already. */
type Located =
  | { readonly found: true; readonly voucherId: number; readonly orderId: string; readonly method: CheckMethod; readonly product: ProductMapping | undefined }
  | { readonly found: false; readonly answer: AdmissionAnswer };

/** The nonce was taken by a concurrent call: roll back and answer with the recorded admission. */
class NonceTaken extends Error {}

function answer(reason: AdmissionReason, extra: Partial<AdmissionAnswer> = {}, detail?: string): AdmissionAnswer {
  return { reason, message: detail ? `${ADMISSION_TEXT[reason]}: ${detail}` : ADMISSION_TEXT[reason], remaining: 0, ...extra };
}

/** Consume serial numbers are [A-Za-z0-9_]{1,100}; our ids already are. */
function newSerial(now: number): string {
  return newId('wo_', now);
}

export interface AdmitInTxInput {
  readonly orderId: string;
  readonly voucherId: number;
  readonly method: CheckMethod;
  readonly count: number;
  /** The instant of the admission (original time for offline and supplier admissions). */
  readonly at: number;
  readonly source: WriteOffSource;
  /** Null for supplier-reported admissions: they come from no device of ours. */
  readonly device: (DeviceScope & { readonly deviceCode: string; readonly posid: string }) | null;
  readonly posid: string | null;
  readonly nonce: string | null;
  /** Given for supplier admissions (derived from the callback, so a repeat cannot consume twice). */
  readonly serial?: string;
  /**
   * The order's product mapping, resolved BEFORE the transaction (the product directory reads the database on a
   * cache miss, which cannot happen inside a transaction). Not needed for supplier-reported admissions.
   */
  readonly product?: ProductMapping;
}

export type AdmitInTxResult =
  | { readonly admitted: true; readonly writeOffId: string; readonly serial: string; readonly remaining: number; readonly validity: { start: number; end: number } }
  | { readonly admitted: false; readonly reason: Exclude<AdmissionReason, 'ADMITTED'>; readonly remaining: number; readonly validity?: { start: number; end: number } };

/**
 * The one write-off path, inside the caller's transaction. A refusal writes nothing (only the order lock was
 * taken). Throws NonceTaken (after the caller's rollback, the recorded admission answers) when the nonce is used.
 */
export async function admitInTransaction(em: EntityManager, input: AdmitInTxInput, clock: Clock): Promise<AdmitInTxResult> {
  const [result] = await admitInArrivalOrder(em, [input], clock, { replayUsedNonces: false });
  return result!;
}

/** The device already recorded an admission under this nonce: answer with that one (AdmissionDesk.replay). */
interface Replay {
  readonly admitted: false;
  readonly replay: true;
}

function isReplay(r: AdmitInTxResult | Replay): r is Replay {
  return 'replay' in r;
}

/** A gate's admission's device and nonce (supplier admissions have neither). */
function deviceNonce(input: AdmitInTxInput): { readonly deviceCode: string; readonly nonce: string } | undefined {
  return input.device && input.nonce !== null ? { deviceCode: input.device.deviceCode, nonce: input.nonce } : undefined;
}

function nonceKey(deviceCode: string, nonce: string): string {
  return `${deviceCode}\u0000${nonce}`;
}

interface VoucherInHand {
  readonly orderId: string;
  readonly status: VoucherEntity['status'];
  remaining: number;
  /** Units this transaction takes off the voucher. */
  taken: number;
}

interface OrderInHand {
  readonly locked: LockedOrder;
  snapshot: OrderSnapshot;
}

/**
 * Decides admissions one after another in the order given, each seeing the effect of the ones before (same order,
 * same voucher), inside the caller's transaction, in two round trips on MariaDB: one that locks the orders and reads
 * the vouchers (and, with `replayUsedNonces`, the nonces already used), one that sends every write. A voucher or
 * order that moved meanwhile (a writer that skipped the order lock) throws, and the caller's transaction rolls back.
 */
async function admitInArrivalOrder(em: EntityManager, inputs: readonly AdmitInTxInput[], clock: Clock, opts: { readonly replayUsedNonces: false }): Promise<AdmitInTxResult[]>;
async function admitInArrivalOrder(em: EntityManager, inputs: readonly AdmitInTxInput[], clock: Clock, opts: { readonly replayUsedNonces: true }): Promise<Array<AdmitInTxResult | Replay>>;
async function admitInArrivalOrder(
  em: EntityManager,
  inputs: readonly AdmitInTxInput[],
  clock: Clock,
  opts: { readonly replayUsedNonces: boolean },
): Promise<Array<AdmitInTxResult | Replay>> {
  const now = clock.now();
  const nonces = opts.replayUsedNonces ? inputs.flatMap((i) => deviceNonce(i) ?? []) : [];
  const reads = [lockOrdersStatement(em, inputs.map((i) => i.orderId)), vouchersStatement(inputs.map((i) => i.voucherId))];
  if (nonces.length > 0) reads.push(usedNoncesStatement(nonces));
  const [orderRows, voucherRows, nonceRows] = await runStatements(em, reads);
  const orders = new Map<string, OrderInHand>();
  for (const row of orderRows!.rows) {
    const locked = lockedOrderOf(row);
    orders.set(locked.id, { locked, snapshot: locked.snapshot });
  }
  const vouchers = new Map<number, VoucherInHand>();
  for (const row of voucherRows!.rows) {
    vouchers.set(Number(row['id']), { orderId: String(row['order_id']), status: row['status'] as VoucherEntity['status'], remaining: Number(row['remaining']), taken: 0 });
  }
  const usedNonces = new Set((nonceRows?.rows ?? []).map((r) => nonceKey(String(r['device_code']), String(r['client_nonce']))));

  const results: Array<AdmitInTxResult | Replay> = [];
  const writeOffs: Array<Partial<WriteOffEntity>> = [];
  const events: Array<AppendEventInput<OrderEventType>> = [];
  const work: SqlStatement[] = [];
  for (const input of inputs) {
    const order = orders.get(input.orderId);
    if (!order) throw new OrderNotFoundError(input.orderId);
    const dn = opts.replayUsedNonces ? deviceNonce(input) : undefined;
    const key = dn && nonceKey(dn.deviceCode, dn.nonce);
    if (key !== undefined && usedNonces.has(key)) {
      results.push({ admitted: false, replay: true });
      continue;
    }
    const validity = { start: order.snapshot.validity.start, end: order.snapshot.validity.end };
    const voucher = vouchers.get(input.voucherId);
    if (!voucher || voucher.orderId !== input.orderId) {
      results.push({ admitted: false, reason: 'UNKNOWN_CODE', remaining: 0 });
      continue;
    }
    const product = input.product;
    // Supplier-reported admissions happened at the supplier's own gate: only the order and units are checked.
    const device: DeviceScope = input.device ?? {
      scenicSpotCode: product?.scenicSpotCode ?? '',
      allowedCheckMethods: [input.method],
    };
    const decision = decideAdmission({
      device,
      method: input.method,
      product: input.device === null ? { scenicSpotCode: device.scenicSpotCode, checkMethods: [input.method] } : product,
      order: order.snapshot,
      voucher: { remaining: voucher.remaining, status: voucher.status },
      count: input.count,
      at: input.at,
    });
    if (!decision.admit) {
      results.push({ admitted: false, reason: decision.reason, remaining: decision.usable, validity });
      continue;
    }
    const serial = input.serial ?? newSerial(now);
    const next = admit(order.snapshot, input.count, input.at, serial);
    if (!next.ok) {
      // decideAdmission checks what admit checks; a difference is a race the lock rules out, so say it plainly.
      results.push({ admitted: false, reason: next.reason === 'EXPIRED' || next.reason === 'NOT_YET_VALID' ? next.reason : 'USED_UP', remaining: decision.usable, validity });
      continue;
    }
    order.snapshot = next.value;
    voucher.remaining -= input.count;
    voucher.taken += input.count;
    if (key !== undefined) usedNonces.add(key);
    const writeOffId = newId('wo_', now);
    writeOffs.push(writeOffRow(writeOffId, input, serial, 'recorded', null));
    events.push({
      orderId: input.orderId,
      type: 'write-off.recorded',
      payload: { writeOffId, quantity: input.count, gateDevice: input.device?.deviceCode ?? '', admittedTime: new Date(input.at) },
      occurredAt: input.at,
    });
    work.push(
      enqueueWorkStatement(
        em,
        { idempotencyKey: `${GATE_WORK.consume}:${serial}`, orderId: input.orderId, kind: GATE_WORK.consume, upstream: TAOBAO_UPSTREAM, payload: { writeOffId } },
        clock,
      ),
    );
    results.push({ admitted: true, writeOffId, serial, remaining: Math.min(voucher.remaining, next.value.ledger.available), validity });
  }
  if (writeOffs.length === 0) return results;

  // Units come off the vouchers with a conditional UPDATE (every voucher must still hold them), as the ledgers move.
  const takenFrom = [...vouchers.entries()].filter(([, v]) => v.taken > 0);
  const saves = [...orders.values()].filter((o) => o.snapshot !== o.locked.snapshot).map((o) => ({ order: o.locked, next: o.snapshot }));
  let written: StatementResult[];
  try {
    written = await runStatements(em, [
      takeUnitsStatement(takenFrom.map(([id, v]) => ({ id, count: v.taken }))),
      saveOrdersStatement(saves, now),
      insertStatement(em, WriteOffEntity, writeOffs),
      ...appendEventStatements(em, events, clock),
      ...asOneInsert(work),
    ]);
  } catch (err) {
    if (isUniqueViolation(err) && inputs.some((i) => i.nonce !== null)) throw new NonceTaken();
    throw err;
  }
  if (written[0]?.affected !== takenFrom.length) throw new OrderConcurrentUpdateError(takenFrom.map(([, v]) => v.orderId).join(', '));
  checkOrdersSaved(saves, written[1]?.affected ?? 0);
  return results;
}

/** Takes `count` units off each voucher that is active and still holds them; affected rows say how many did. */
function takeUnitsStatement(takes: ReadonlyArray<{ readonly id: number; readonly count: number }>): SqlStatement {
  return {
    sql:
      `UPDATE vouchers SET remaining = remaining - CASE id ${takes.map(() => 'WHEN ? THEN ?').join(' ')} END ` +
      `WHERE status = 'active' AND (${takes.map(() => '(id = ? AND remaining >= ?)').join(' OR ')})`,
    params: [...takes.flatMap((t) => [t.id, t.count]), ...takes.flatMap((t) => [t.id, t.count])],
  };
}

function vouchersStatement(voucherIds: readonly number[]): SqlStatement {
  const ids = [...new Set(voucherIds)];
  return { sql: `SELECT id, order_id, remaining, status FROM vouchers WHERE id IN (${ids.map(() => '?').join(', ')})`, params: ids };
}

/** Which of these (device, nonce) pairs already have a write-off: the unique index answers each pair. */
function usedNoncesStatement(pairs: ReadonlyArray<{ readonly deviceCode: string; readonly nonce: string }>): SqlStatement {
  return {
    sql: `SELECT device_code, client_nonce FROM write_offs WHERE ${pairs.map(() => '(device_code = ? AND client_nonce = ?)').join(' OR ')}`,
    params: pairs.flatMap((p) => [p.deviceCode, p.nonce]),
  };
}

/** The write-off row of an admission: `recorded` when it took units, `conflict` when it could not be honoured. */
function writeOffRow(id: string, input: AdmitInTxInput, serial: string, state: 'recorded' | 'conflict', reverseReason: string | null): WriteOffEntity {
  return {
    id,
    orderId: input.orderId,
    voucherId: input.voucherId,
    serialNum: serial,
    deviceCode: input.device?.deviceCode ?? null,
    posid: input.posid,
    checkMethod: input.method,
    source: input.source,
    clientNonce: input.nonce,
    count: input.count,
    admittedAt: input.at,
    state,
    reversedAt: null,
    reverseReason,
  };
}

/** Records an admission that cannot be honoured (offline or supplier-reported): no ledger change, an operator looks. */
async function recordConflict(
  em: EntityManager,
  input: AdmitInTxInput & { readonly why: AdmissionReason },
  clock: Clock,
): Promise<string> {
  const now = clock.now();
  const writeOffId = newId('wo_', now);
  await em.insert(WriteOffEntity, writeOffRow(writeOffId, input, input.serial ?? newSerial(now), 'conflict', input.why));
  const detail = `write-off ${writeOffId}: ${input.source} admission of ${input.count} at ${new Date(input.at).toISOString()} on device ${input.device?.deviceCode ?? '-'} cannot be honoured (${input.why})`;
  await raiseException(em, GATE_EXCEPTIONS.conflict, input.orderId, detail, now, clock);
  return writeOffId;
}

export async function raiseException(em: EntityManager, kind: string, orderId: string | null, detail: string, now: number, clock: Clock): Promise<void> {
  const text = exceptionRaised(kind, detail).detail;
  await em.insert(OperatorExceptionEntity, { kind, orderId, detail: text, createdAt: now, resolvedAt: null });
  if (orderId !== null) await appendEvent(em, { orderId, type: 'exception.raised', payload: exceptionRaised(kind, text) }, clock);
}

/**
 * Groups of Redeems decided at the same time, each in its own transaction (and pooled connection): while one waits
 * for MariaDB (its commit, say), the next is being decided; more at once would only split the waiting calls into
 * smaller groups, each paying its own round trips. Measured (bench section 2): 1 and 2 alike at c=32, 2 with the
 * lower tail at 500/s; 4 and 8 slower.
 */
const REDEEM_GROUPS_AT_ONCE = 2;
/** At most this many Redeems in one group: bounds the transaction's statements and the rows it locks. */
const REDEEM_GROUP_MAX = 64;
/** At most this many vouchers are considered for one presented code. */
const CODE_ROWS_LIMIT = 20;

/** A Redeem waiting for its group; `at` is when it arrived (the admission's instant). */
interface RedeemCall {
  readonly device: GateDeviceView;
  readonly presented: Presented;
  readonly count: number;
  readonly nonce: string;
  readonly at: number;
  readonly resolve: (a: AdmissionAnswer) => void;
  readonly reject: (err: unknown) => void;
}

/** What a group decided for one call: an answer already (its code led nowhere), or its admission's result. */
type GroupOutcome =
  | { readonly answer: AdmissionAnswer }
  | { readonly located: Extract<Located, { found: true }>; readonly result: AdmitInTxResult | Replay };

/** A voucher carrying a presented code, with its order's product codes. */
interface CodeRow {
  readonly id: number;
  readonly orderId: string;
  readonly qrPayload: string | null;
  readonly outerIid: string | null;
  readonly subOuterIid: string | null;
}

function settle(call: RedeemCall, decide: () => Promise<AdmissionAnswer>): Promise<void> {
  return decide().then(call.resolve, call.reject);
}

function gateAdmission(call: RedeemCall, located: Extract<Located, { found: true }>): AdmitInTxInput {
  const { device } = call;
  return { orderId: located.orderId, voucherId: located.voucherId, method: located.method, count: call.count, at: call.at, source: 'gate', device, posid: device.posid, nonce: call.nonce, product: located.product };
}

/** The voucher code a presented code or QR payload stands for, if any. */
function presentedCode(presented: Exclude<Presented, { kind: 'id_card' }>): string | undefined {
  return (presented.kind === 'code' ? presented.code.trim() : codeFromQrPayload(presented.payload)) || undefined;
}

function nullableText(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

export class AdmissionDesk {
  private readonly db: Database;
  private readonly products: ProductLookup;
  private readonly protector: PersonalDataProtector;
  private readonly clock: Clock;
  /** Redeems waiting for a group (see redeem), in arrival order. */
  private readonly waiting: RedeemCall[] = [];
  private groupsDeciding = 0;

  constructor(deps: AdmissionDeskDeps) {
    this.db = deps.db;
    this.products = deps.products;
    this.protector = deps.protector;
    this.clock = deps.clock ?? systemClock;
  }

  /** May this enter now? Reads only. */
  async check(device: GateDeviceView, presented: Presented, count: number): Promise<AdmissionAnswer> {
    const now = this.clock.now();
    const located = await this.locate(device, presented, count, now);
    if (!located.found) return located.answer;
    const { order, voucher } = await this.db.read(async (em) => ({
      order: await em.findOne(OrderEntity, { where: { id: located.orderId } }),
      voucher: await em.findOne(VoucherEntity, { where: { id: located.voucherId } }),
    }));
    if (!order || !voucher) return answer('UNKNOWN_CODE');
    const ledger = ledgerOf(order);
    const validity = { start: order.validStart, end: order.validEnd };
    const decision = decideAdmission({
      device,
      method: located.method,
      product: located.product,
      order: { phase: phaseOf(order.state, ledger), ledger, validity },
      voucher: { remaining: voucher.remaining, status: voucher.status },
      count,
      at: now,
    });
    return answer(decision.admit ? 'ADMITTED' : decision.reason, { remaining: decision.usable, orderId: order.id, validity });
  }

  /**
   * Admits `count` on the presented credential, once per device + nonce.
   *
   * Group commit: Redeems that arrive while others are being decided wait, and are then decided together, in
   * arrival order, in ONE transaction (admitInArrivalOrder: each call its own decision, same-code calls seeing each
   * other's effect). A transaction's round trips and its commit cost the gateway and MariaDB far more than the
   * decisions, so a busy desk pays them once per group instead of once per admission; an idle desk decides a lone
   * Redeem at once, as before.
   */
  redeem(device: GateDeviceView, presented: Presented, count: number, nonce: string): Promise<AdmissionAnswer> {
    const at = this.clock.now();
    return new Promise((resolve, reject) => {
      this.waiting.push({ device, presented, count, nonce, at, resolve, reject });
      this.startGroups();
    });
  }

  private startGroups(): void {
    while (this.groupsDeciding < REDEEM_GROUPS_AT_ONCE && this.waiting.length > 0) {
      const group = this.waiting.splice(0, REDEEM_GROUP_MAX);
      this.groupsDeciding++;
      void this.redeemGroup(group).finally(() => {
        this.groupsDeciding--;
        this.startGroups();
      });
    }
  }

  /** Answers every call of the group; never throws (each call gets its own answer or error). */
  private async redeemGroup(calls: readonly RedeemCall[]): Promise<void> {
    let outcomes: GroupOutcome[];
    try {
      outcomes = await this.decideTogether(calls);
    } catch {
      // A surprise for the group (a nonce taken by a concurrent call, a lock wait timeout, a failed read): its
      // transaction rolled back, so each call is decided again, alone, in arrival order. Had the failure hidden a
      // commit that did land, each recorded admission answers as the replay of its nonce: nothing is admitted twice.
      for (const call of calls) await settle(call, () => this.redeemAlone(call));
      return;
    }
    calls.forEach((call, i) => void settle(call, () => this.answerOf(call, outcomes[i]!)));
  }

  /** Locates every call's voucher (one read for all the codes), then decides the located ones in one transaction. */
  private async decideTogether(calls: readonly RedeemCall[]): Promise<GroupOutcome[]> {
    const located = await this.locateAll(calls);
    const admissions: AdmitInTxInput[] = [];
    calls.forEach((call, i) => {
      const l = located[i]!;
      if (l.found) admissions.push(gateAdmission(call, l));
    });
    const decided = admissions.length === 0 ? [] : await this.db.transaction((em) => admitInArrivalOrder(em, admissions, this.clock, { replayUsedNonces: true }));
    let next = 0;
    return located.map((l) => (l.found ? { located: l, result: decided[next++]! } : { answer: l.answer }));
  }

  private async answerOf(call: RedeemCall, outcome: GroupOutcome): Promise<AdmissionAnswer> {
    if ('answer' in outcome) return outcome.answer;
    const { located, result } = outcome;
    if (isReplay(result)) return this.replay(call.device, call.nonce, located.voucherId);
    if (result.admitted) return answer('ADMITTED', { remaining: result.remaining, writeOffId: result.writeOffId, orderId: located.orderId, validity: result.validity });
    return answer(result.reason, { remaining: result.remaining, orderId: located.orderId, validity: result.validity });
  }

  /** One Redeem in its own transaction: the path a group falls back to. */
  private async redeemAlone(call: RedeemCall): Promise<AdmissionAnswer> {
    const { device, nonce } = call;
    const located = await this.locate(device, call.presented, call.count, call.at);
    if (!located.found) return located.answer;
    try {
      const result = await this.db.transaction((em) => admitInTransaction(em, gateAdmission(call, located), this.clock));
      if (result.admitted) return answer('ADMITTED', { remaining: result.remaining, writeOffId: result.writeOffId, orderId: located.orderId, validity: result.validity });
      // A retry of an admission that went through finds the units gone: answer with what was recorded.
      const earlier = await this.db.read((em) => em.findOne(WriteOffEntity, { where: { deviceCode: device.deviceCode, clientNonce: nonce }, select: { id: true } }));
      if (earlier) return this.replay(device, nonce, located.voucherId);
      return answer(result.reason, { remaining: result.remaining, orderId: located.orderId, validity: result.validity });
    } catch (err) {
      if (err instanceof NonceTaken) return this.replay(device, nonce, located.voucherId);
      throw err;
    }
  }

  /** Offline admissions, each in its own transaction; a nonce seen before answers what it came to then. */
  async uploadOffline(device: GateDeviceView, items: readonly OfflineAdmissionInput[]): Promise<Array<{ nonce: string; answer: AdmissionAnswer }>> {
    const out: Array<{ nonce: string; answer: AdmissionAnswer }> = [];
    for (const item of items) out.push({ nonce: item.nonce, answer: await this.uploadOne(device, item) });
    return out;
  }

  private async uploadOne(device: GateDeviceView, item: OfflineAdmissionInput): Promise<AdmissionAnswer> {
    const earlier = await this.offlineRecord(device.deviceCode, item.nonce);
    if (earlier) return earlier;
    const now = this.clock.now();
    const located = await this.locate(device, item.presented, item.count, item.admittedAt);
    try {
      return await this.db.transaction(async (em) => {
        const record = (outcome: 'admitted' | 'conflict', result: AdmissionReason, writeOffId: string | null, orderId: string | null) =>
          em.insert(GateOfflineAdmissionEntity, {
            deviceCode: device.deviceCode,
            clientNonce: item.nonce,
            admittedAt: item.admittedAt,
            receivedAt: now,
            count: item.count,
            outcome,
            result,
            writeOffId,
            orderId,
          });
        if (!located.found) {
          // Nothing to hang a write-off on (unknown code, ambiguous ID card): the operator exception carries it.
          const why = located.answer.reason;
          await record('conflict', why, null, null);
          await raiseException(
            em,
            GATE_EXCEPTIONS.conflict,
            null,
            `offline admission nonce ${item.nonce} of ${item.count} at ${new Date(item.admittedAt).toISOString()} on device ${device.deviceCode} matches no usable ticket (${why})`,
            now,
            this.clock,
          );
          return answer('CONFLICT', {}, why);
        }
        const base = {
          orderId: located.orderId,
          voucherId: located.voucherId,
          method: located.method,
          count: item.count,
          at: item.admittedAt,
          source: 'gate_offline' as const,
          device,
          posid: device.posid,
          nonce: item.nonce,
          product: located.product,
        };
        const result = await admitInTransaction(em, base, this.clock);
        if (result.admitted) {
          await record('admitted', 'ADMITTED', result.writeOffId, located.orderId);
          return answer('ADMITTED', { remaining: result.remaining, writeOffId: result.writeOffId, orderId: located.orderId, validity: result.validity });
        }
        const writeOffId = await recordConflict(em, { ...base, why: result.reason }, this.clock);
        await record('conflict', result.reason, writeOffId, located.orderId);
        return answer('CONFLICT', { writeOffId, orderId: located.orderId, remaining: result.remaining }, result.reason);
      });
    } catch (err) {
      if (err instanceof NonceTaken || isUniqueViolation(err)) {
        const replay = await this.offlineRecord(device.deviceCode, item.nonce);
        if (replay) return replay;
      }
      throw err;
    }
  }

  private async offlineRecord(deviceCode: string, nonce: string): Promise<AdmissionAnswer | undefined> {
    const row = await this.db.read((em) => em.findOne(GateOfflineAdmissionEntity, { where: { deviceCode, clientNonce: nonce } }));
    if (!row) return undefined;
    const reason: AdmissionReason = row.outcome === 'admitted' ? 'ADMITTED' : 'CONFLICT';
    return answer(reason, { replayed: true, writeOffId: row.writeOffId ?? undefined, orderId: row.orderId ?? undefined }, reason === 'CONFLICT' ? row.result : undefined);
  }

  /** Undo an admission within two hours, same count; Taobao is told by the `taobao.reverse` work. */
  async reverse(device: GateDeviceView, writeOffId: string, count: number, reason: string): Promise<ReverseAnswer> {
    const now = this.clock.now();
    const found = await this.db.read(async (em) => {
      const w = await em.findOne(WriteOffEntity, { where: { id: writeOffId } });
      const o = w ? await em.findOne(OrderEntity, { where: { id: w.orderId } }) : null;
      return w && o ? { w, o } : undefined;
    });
    const no = (r: AdmissionReason, extra: Partial<ReverseAnswer> = {}): ReverseAnswer => ({ reason: r, message: ADMISSION_TEXT[r], remaining: 0, ...extra });
    if (!found) return no('WRITE_OFF_NOT_FOUND');
    const product = await this.products.resolve(found.o.outerIid, found.o.subOuterIid);
    if (!product || product.scenicSpotCode !== device.scenicSpotCode) return no('WRONG_SCENIC_SPOT');
    const w = found.w;
    if (w.state === 'reversed' || w.state === 'failed' || w.state === 'conflict') return no('ALREADY_REVERSED');

    return this.db.transaction(async (em) => {
      const loaded = await loadOrderForUpdate(em, w.orderId, { withWriteOffs: true });
      const next = reverseAdmission(loaded.snapshot, w.serialNum, count, now);
      if (!next.ok) {
        switch (next.reason) {
          case 'REVERSE_WINDOW_PASSED':
            return no('REVERSE_WINDOW_PASSED', { reverseDeadline: reverseDeadline(w) });
          case 'COUNT_MISMATCH':
            return no('REVERSE_COUNT_MISMATCH');
          case 'ALREADY_REVERSED':
            return no('ALREADY_REVERSED');
          default:
            return no('WRITE_OFF_NOT_FOUND');
        }
      }
      const moved = await em.update(
        WriteOffEntity,
        { id: w.id, state: w.state },
        { state: 'reversed', reversedAt: now, reverseReason: reason.slice(0, 255) || 'reversed at the gate' },
      );
      if (moved.affected !== 1) return no('ALREADY_REVERSED');
      await saveOrderSnapshot(em, loaded, next.value, now);
      await restoreVoucherUnits(em, w.voucherId, w.count);
      await appendEvent(em, { orderId: w.orderId, type: 'write-off.reversed', payload: { writeOffId: w.id, quantity: w.count, reason: reason || 'reversed at the gate' } }, this.clock);
      await enqueueWork(
        em,
        { idempotencyKey: `${GATE_WORK.reverse}:${w.serialNum}`, orderId: w.orderId, kind: GATE_WORK.reverse, upstream: TAOBAO_UPSTREAM, payload: { writeOffId: w.id, mode: 'gate' } },
        this.clock,
      );
      const v = await em.findOne(VoucherEntity, { where: { id: w.voucherId } });
      return { reason: 'ADMITTED' as const, message: 'Reversed: the units are usable again', remaining: Math.min(v?.remaining ?? 0, next.value.ledger.available) };
    });
  }

  /** The admission this device recorded under `nonce`: the same answer again, nothing new. */
  private async replay(device: GateDeviceView, nonce: string, voucherId: number): Promise<AdmissionAnswer> {
    const w = await this.db.read((em) => em.findOne(WriteOffEntity, { where: { deviceCode: device.deviceCode, clientNonce: nonce } }));
    if (!w) throw new Error('nonce conflict without a recorded write-off');
    if (w.voucherId !== voucherId) return answer('NONCE_REUSED', { orderId: w.orderId });
    const v = await this.db.read((em) => em.findOne(VoucherEntity, { where: { id: w.voucherId } }));
    return answer('ADMITTED', { replayed: true, writeOffId: w.id, orderId: w.orderId, remaining: v?.remaining ?? 0 });
  }

  /** Finds the one voucher a credential stands for, or the answer when there is none or several. */
  private async locate(device: GateDeviceView, presented: Presented, count: number, at: number): Promise<Located> {
    if (presented.kind === 'id_card') return this.locateByIdCard(device, presented, count, at);
    const code = presentedCode(presented);
    if (!code) return { found: false, answer: answer('UNKNOWN_CODE') };
    const rows = await this.vouchersByCode([code]);
    return this.pickVoucher(device, presented, code, rows.get(code) ?? []);
  }

  /** locate for several calls, with one read for all their codes. */
  private async locateAll(calls: readonly RedeemCall[]): Promise<Located[]> {
    const codes = calls.map((c) => (c.presented.kind === 'id_card' ? undefined : presentedCode(c.presented)));
    const wanted = [...new Set(codes.filter((c): c is string => c !== undefined))];
    const rows = wanted.length === 0 ? new Map<string, CodeRow[]>() : await this.vouchersByCode(wanted);
    return Promise.all(
      calls.map((c, i) => {
        if (c.presented.kind === 'id_card') return this.locateByIdCard(c.device, c.presented, c.count, c.at);
        const code = codes[i];
        return code ? this.pickVoucher(c.device, c.presented, code, rows.get(code) ?? []) : { found: false as const, answer: answer('UNKNOWN_CODE') };
      }),
    );
  }

  /**
   * The vouchers carrying each code, with their orders' product codes, in one round trip; at most
   * CODE_ROWS_LIMIT per code. Several codes whose rows together pass the bound throw (the caller locates them one
   * by one), so a code carried by many vouchers never hides another code's rows.
   */
  private async vouchersByCode(codes: readonly string[]): Promise<Map<string, CodeRow[]>> {
    const limit = CODE_ROWS_LIMIT * codes.length;
    const raw: Array<Record<string, unknown>> = await this.db.read((em) =>
      em.query(
        'SELECT v.id, v.code, v.order_id, v.qr_payload, o.outer_iid, o.sub_outer_iid FROM vouchers v INNER JOIN orders o ON o.id = v.order_id ' +
          `WHERE v.code IN (${codes.map(() => '?').join(', ')}) LIMIT ${limit + 1}`,
        [...codes],
      ),
    );
    if (raw.length > limit && codes.length > 1) throw new Error(`codes carried by more than ${limit} vouchers: locate them one by one`);
    const byCode = new Map<string, CodeRow[]>();
    for (const r of raw) {
      const code = String(r['code']);
      const list = byCode.get(code) ?? [];
      if (list.length === CODE_ROWS_LIMIT) continue;
      list.push({ id: Number(r['id']), orderId: String(r['order_id']), qrPayload: nullableText(r['qr_payload']), outerIid: nullableText(r['outer_iid']), subOuterIid: nullableText(r['sub_outer_iid']) });
      byCode.set(code, list);
    }
    return byCode;
  }

  /** Of the vouchers carrying the presented code, the one this device may be admitting on. */
  private async pickVoucher(device: GateDeviceView, presented: Exclude<Presented, { kind: 'id_card' }>, code: string, candidates: readonly CodeRow[]): Promise<Located> {
    const method = presented.kind === 'code' ? CheckMethod.Code : CheckMethod.Qr;
    let rows = candidates;
    if (presented.kind === 'qr') {
      const scanned = presented.payload.trim();
      rows = rows.filter((v) => (v.qrPayload === null ? scanned === code : v.qrPayload === scanned || v.qrPayload === presented.payload));
    }
    if (rows.length === 0) return { found: false, answer: answer('UNKNOWN_CODE') };
    const withProduct = await Promise.all(rows.map(async (v) => ({ v, p: await this.products.resolve(v.outerIid, v.subOuterIid) })));
    const hit = (x: (typeof withProduct)[number]): Located => ({ found: true, voucherId: x.v.id, orderId: x.v.orderId, method, product: x.p });
    if (withProduct.length === 1) return hit(withProduct[0]!);
    // The same code at two suppliers: only this scenic spot's counts; two there is a supplier's error.
    const here = withProduct.filter((x) => x.p?.scenicSpotCode === device.scenicSpotCode);
    if (here.length === 1) return hit(here[0]!);
    if (here.length === 0) return { found: false, answer: answer('WRONG_SCENIC_SPOT') };
    return { found: false, answer: answer('UNKNOWN_CODE', {}, 'several tickets carry this code; ask an operator') };
  }

  private async locateByIdCard(device: GateDeviceView, presented: Extract<Presented, { kind: 'id_card' }>, count: number, at: number): Promise<Located> {
    const hash = this.protector.hash(presented.idCard);
    let orders = await this.db.read((em) => em.find(OrderEntity, { where: { idCardHash: hash }, order: { createdAt: 'DESC' }, take: 50 }));
    if (presented.orderId) orders = orders.filter((o) => o.id === presented.orderId);
    if (orders.length === 0) return { found: false, answer: answer('UNKNOWN_CODE', {}, 'no ticket for this ID card') };
    type Evaluated = { order: OrderEntity; voucher: VoucherEntity | undefined; admit: boolean; reason: AdmissionReason; product: ProductMapping | undefined };
    const evaluated: Evaluated[] = [];
    for (const order of orders) {
      const vouchers = await this.db.read((em) => em.find(VoucherEntity, { where: { orderId: order.id }, order: { id: 'ASC' } }));
      const active = vouchers.filter((v) => v.status === 'active');
      const voucher = active.find((v) => v.remaining >= count) ?? active.find((v) => v.remaining > 0) ?? active[0] ?? vouchers[0];
      const product = await this.products.resolve(order.outerIid, order.subOuterIid);
      const ledger = ledgerOf(order);
      const decision = voucher
        ? decideAdmission({
            device,
            method: CheckMethod.IdCard,
            product,
            order: { phase: phaseOf(order.state, ledger), ledger, validity: { start: order.validStart, end: order.validEnd } },
            voucher: { remaining: voucher.remaining, status: voucher.status },
            count,
            at,
          })
        : ({ admit: false, reason: 'NOT_ISSUED', usable: 0 } as const);
      evaluated.push({ order, voucher, admit: decision.admit, reason: decision.admit ? 'ADMITTED' : decision.reason, product });
    }
    const usable = evaluated.filter((e) => e.admit);
    const pick = usable.length === 1 ? usable[0]! : usable.length === 0 && evaluated.length === 1 ? evaluated[0]! : undefined;
    if (pick?.voucher) return { found: true, voucherId: pick.voucher.id, orderId: pick.order.id, method: CheckMethod.IdCard, product: pick.product };
    if (usable.length > 1) {
      const candidates = usable.map(({ order }) => ({
        orderId: order.id,
        itemTitle: order.itemTitle ?? '',
        idCardMasked: order.idCardMasked ?? maskIdCard(presented.idCard.trim()),
        visitorNameMasked: maskName(order.visitorName),
        available: order.available,
        validStart: order.validStart,
        validEnd: order.validEnd,
      }));
      return { found: false, answer: answer('AMBIGUOUS_ID_CARD', { candidates }) };
    }
    // None usable: the newest order's reason is the most useful answer.
    const first = evaluated[0]!;
    return { found: false, answer: answer(first.reason === 'ADMITTED' ? 'NOT_ISSUED' : first.reason, { orderId: first.order.id }) };
  }
}

function maskName(name: string | null): string {
  if (!name) return '';
  const chars = [...name];
  return chars.length <= 1 ? '*' : chars[0] + '*'.repeat(chars.length - 1);
}

/** What a supplier-reported admission needs besides the transaction (see SupplierCallbackSink in src/suppliers). */
export interface SupplierAdmissionDeps {
  readonly instanceCode: string;
  readonly clock: Clock;
  readonly receivedAt: number;
  /** posid for the Taobao consume; when absent the consume work uses a device of the product's scenic spot. */
  readonly posid?: string;
}

export interface SupplierAdmissionCallback {
  readonly ourOrderCode?: string;
  readonly supplierOrderId?: string;
  readonly dedupKey: string;
  readonly count?: number;
  readonly totalUsed?: number;
}

/**
 * An admission a supplier saw at its own gate (Zhiyoubao check notice, Lianhe snNotify): the same write-off path,
 * source 'supplier', inside the callback's transaction. Units it reports beyond what we can honour become a
 * conflict write-off for operators. The consume serial derives from the callback's dedup key, so a callback
 * processed twice can never consume twice.
 */
export async function onSupplierAdmission(em: EntityManager, cb: SupplierAdmissionCallback, deps: SupplierAdmissionDeps): Promise<void> {
  const now = deps.clock.now();
  const order =
    (cb.ourOrderCode ? await em.findOne(OrderEntity, { where: { id: cb.ourOrderCode } }) : null) ??
    (cb.supplierOrderId ? await em.findOne(OrderEntity, { where: { supplierOrderId: cb.supplierOrderId } }) : null);
  if (!order) {
    await raiseException(em, GATE_EXCEPTIONS.conflict, null, `supplier ${deps.instanceCode} reported an admission (${cb.dedupKey}) for an order we do not know`, now, deps.clock);
    return;
  }
  let units = cb.count;
  if (units === undefined && cb.totalUsed !== undefined) {
    // Only a running total: admit the part our supplier-source write-offs do not cover yet.
    const standing = await em.find(WriteOffEntity, { where: { orderId: order.id, source: 'supplier' } });
    const counted = standing.filter((w) => w.state !== 'failed' && w.state !== 'reversed').reduce((s, w) => s + w.count, 0);
    units = cb.totalUsed - counted;
  }
  if (units === undefined || !Number.isSafeInteger(units) || units <= 0) return;

  const serialBase = `sp_${createHash('sha256').update(`${deps.instanceCode}\u0000${cb.dedupKey}`).digest('hex').slice(0, 40)}`;
  // This very callback was applied already (its inbound record was lost): no second effect.
  if (await em.findOne(WriteOffEntity, { where: { serialNum: `${serialBase}_0` }, select: { id: true } })) return;
  // Without a posid here, the consume work finds one of the scenic spot's devices when it runs (outside this transaction).
  const posid = deps.posid ?? null;
  const vouchers = await em.find(VoucherEntity, { where: { orderId: order.id }, order: { id: 'ASC' } });
  let left = units;
  let piece = 0;
  let why: AdmissionReason = 'USED_UP';
  for (const v of vouchers) {
    if (left === 0) break;
    if (v.status !== 'active' || v.remaining <= 0) continue;
    const k = Math.min(left, v.remaining);
    const result = await admitInTransaction(
      em,
      { orderId: order.id, voucherId: v.id, method: CheckMethod.Code, count: k, at: deps.receivedAt, source: 'supplier', device: null, posid, nonce: null, serial: `${serialBase}_${piece++}` },
      deps.clock,
    );
    if (result.admitted) left -= k;
    else {
      why = result.reason;
      break;
    }
  }
  if (left > 0) {
    const voucherId = vouchers[0]?.id ?? 0;
    await recordConflict(
      em,
      { orderId: order.id, voucherId, method: CheckMethod.Code, count: left, at: deps.receivedAt, source: 'supplier', device: null, posid, nonce: null, serial: `${serialBase}_${piece}`, why },
      deps.clock,
    );
  }
}

/** Puts units of an undone admission back on its voucher (the order's ledger is restored by the domain). */
export async function restoreVoucherUnits(em: EntityManager, voucherId: number, count: number): Promise<void> {
  await em
    .createQueryBuilder()
    .update(VoucherEntity)
    .set({ remaining: () => `remaining + ${Number(count)}` })
    .where('id = :id', { id: voucherId })
    .execute();
}
