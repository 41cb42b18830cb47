/**
 * Admissions at the gate (核销): check, redeem, offline uploads, reversal, and the admissions suppliers report
 * from their own gates - all through ONE write-off path.
 *
 * A redeem is one short transaction and makes no outside call: lock the order, decide (admission-rules.ts), take
 * the units with a conditional `UPDATE vouchers … WHERE remaining >= k` (affected rows checked), save the ledger
 * (version-checked, as mutateOrder does), insert the write-off under a fresh consume serial, and write the
 * `write-off.recorded` event and the `taobao.consume` work item. Taobao hears of it afterwards (consume-work.ts).
 *
 * Locks: the order row first, then its vouchers - the same order as every other writer of an order.
 */
import { createHash } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { CheckMethod, systemClock, type Clock } from '../domain/model';
import { admit, reverseAdmission } from '../domain/order';
import { maskIdCard } from '../domain/personal-data';
import { reverseDeadline } from '../domain/write-off-rules';
import { appendEvent, exceptionRaised } from '../outbox/outbox';
import { ledgerOf, loadOrderForUpdate, phaseOf, saveOrderSnapshot } from '../orders/order-store';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import { VoucherEntity } from '../persistence/entities/voucher.entity';
import { WriteOffEntity, type WriteOffSource } from '../persistence/entities/write-off.entity';
import { isUniqueViolation } from '../persistence/errors';
import { newId } from '../persistence/ids';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import type { ProductMapping } from '../suppliers/product-catalog';
import { enqueueWork } from '../work/work-queue';
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
  const now = clock.now();
  const loaded = await loadOrderForUpdate(em, input.orderId);
  const order = loaded.entity;
  const validity = { start: order.validStart, end: order.validEnd };
  const voucher = await em.findOne(VoucherEntity, { where: { id: input.voucherId } });
  if (!voucher || voucher.orderId !== input.orderId) return { admitted: false, reason: 'UNKNOWN_CODE', remaining: 0 };
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
    order: loaded.snapshot,
    voucher: { remaining: voucher.remaining, status: voucher.status },
    count: input.count,
    at: input.at,
  });
  if (!decision.admit) return { admitted: false, reason: decision.reason, remaining: decision.usable, validity };

  const serial = input.serial ?? newSerial(now);
  const next = admit(loaded.snapshot, input.count, input.at, serial);
  if (!next.ok) {
    // decideAdmission checks what admit checks; a difference is a race the lock rules out, so say it plainly.
    return { admitted: false, reason: next.reason === 'EXPIRED' || next.reason === 'NOT_YET_VALID' ? next.reason : 'USED_UP', remaining: decision.usable, validity };
  }
  const taken = await em
    .createQueryBuilder()
    .update(VoucherEntity)
    .set({ remaining: () => `remaining - ${Number(input.count)}` })
    .where('id = :id AND remaining >= :k AND status = :active', { id: voucher.id, k: input.count, active: 'active' })
    .execute();
  if (taken.affected !== 1) return { admitted: false, reason: 'USED_UP', remaining: 0, validity };
  await saveOrderSnapshot(em, loaded, next.value, now);

  const writeOffId = newId('wo_', now);
  try {
    await em.insert(WriteOffEntity, {
      id: writeOffId,
      orderId: input.orderId,
      voucherId: voucher.id,
      serialNum: serial,
      deviceCode: input.device?.deviceCode ?? null,
      posid: input.posid,
      checkMethod: input.method,
      source: input.source,
      clientNonce: input.nonce,
      count: input.count,
      admittedAt: input.at,
      state: 'recorded',
      reversedAt: null,
      reverseReason: null,
    });
  } catch (err) {
    if (isUniqueViolation(err) && input.nonce !== null) throw new NonceTaken();
    throw err;
  }
  await appendEvent(
    em,
    {
      orderId: input.orderId,
      type: 'write-off.recorded',
      payload: { writeOffId, quantity: input.count, gateDevice: input.device?.deviceCode ?? '', admittedTime: new Date(input.at) },
      occurredAt: input.at,
    },
    clock,
  );
  await enqueueWork(
    em,
    { idempotencyKey: `${GATE_WORK.consume}:${serial}`, orderId: input.orderId, kind: GATE_WORK.consume, upstream: TAOBAO_UPSTREAM, payload: { writeOffId } },
    clock,
  );
  return { admitted: true, writeOffId, serial, remaining: Math.min(voucher.remaining - input.count, next.value.ledger.available), validity };
}

/** Records an admission that cannot be honoured (offline or supplier-reported): no ledger change, an operator looks. */
async function recordConflict(
  em: EntityManager,
  input: AdmitInTxInput & { readonly why: AdmissionReason },
  clock: Clock,
): Promise<string> {
  const now = clock.now();
  const writeOffId = newId('wo_', now);
  await em.insert(WriteOffEntity, {
    id: writeOffId,
    orderId: input.orderId,
    voucherId: input.voucherId,
    serialNum: input.serial ?? newSerial(now),
    deviceCode: input.device?.deviceCode ?? null,
    posid: input.posid,
    checkMethod: input.method,
    source: input.source,
    clientNonce: input.nonce,
    count: input.count,
    admittedAt: input.at,
    state: 'conflict',
    reversedAt: null,
    reverseReason: input.why,
  });
  const detail = `write-off ${writeOffId}: ${input.source} admission of ${input.count} at ${new Date(input.at).toISOString()} on device ${input.device?.deviceCode ?? '-'} cannot be honoured (${input.why})`;
  await raiseException(em, GATE_EXCEPTIONS.conflict, input.orderId, detail, now, clock);
  return writeOffId;
}

export async function raiseException(em: EntityManager, kind: string, orderId: string | null, detail: string, now: number, clock: Clock): Promise<void> {
  const text = exceptionRaised(kind, detail).detail;
  await em.insert(OperatorExceptionEntity, { kind, orderId, detail: text, createdAt: now, resolvedAt: null });
  if (orderId !== null) await appendEvent(em, { orderId, type: 'exception.raised', payload: exceptionRaised(kind, text) }, clock);
}

export class AdmissionDesk {
  private readonly db: Database;
  private readonly products: ProductLookup;
  private readonly protector: PersonalDataProtector;
  private readonly clock: Clock;

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

  /** Admits `count` on the presented credential, once per device + nonce. */
  async redeem(device: GateDeviceView, presented: Presented, count: number, nonce: string): Promise<AdmissionAnswer> {
    const now = this.clock.now();
    const located = await this.locate(device, presented, count, now);
    if (!located.found) return located.answer;
    try {
      const result = await this.db.transaction((em) =>
        admitInTransaction(
          em,
          { orderId: located.orderId, voucherId: located.voucherId, method: located.method, count, at: now, source: 'gate', device, posid: device.posid, nonce, product: located.product },
          this.clock,
        ),
      );
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
    const method = presented.kind === 'code' ? CheckMethod.Code : CheckMethod.Qr;
    const code = presented.kind === 'code' ? presented.code.trim() : codeFromQrPayload(presented.payload);
    if (!code) return { found: false, answer: answer('UNKNOWN_CODE') };
    // One round trip: the voucher and its order's product codes.
    let rows: Array<{ id: number | string; orderId: string; qrPayload: string | null; outerIid: string | null; subOuterIid: string | null }> = await this.db.read((em) =>
      em
        .createQueryBuilder(VoucherEntity, 'v')
        .innerJoin(OrderEntity, 'o', 'o.id = v.order_id')
        .select(['v.id AS id', 'v.order_id AS orderId', 'v.qr_payload AS qrPayload', 'o.outer_iid AS outerIid', 'o.sub_outer_iid AS subOuterIid'])
        .where('v.code = :code', { code })
        .limit(20)
        .getRawMany(),
    );
    if (presented.kind === 'qr') {
      const scanned = presented.payload.trim();
      rows = rows.filter((v) => (v.qrPayload === null ? scanned === code : v.qrPayload === scanned || v.qrPayload === presented.payload));
    }
    if (rows.length === 0) return { found: false, answer: answer('UNKNOWN_CODE') };
    const withProduct = await Promise.all(rows.map(async (v) => ({ v, p: await this.products.resolve(v.outerIid, v.subOuterIid) })));
    const hit = (x: (typeof withProduct)[number]): Located => ({ found: true, voucherId: Number(x.v.id), orderId: x.v.orderId, method, product: x.p });
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
