/**
 * Telling Taobao about admissions, as durable work (run by the WorkRunner, through the 'taobao' breaker):
 *
 * - `taobao.consume`: consume under the write-off's serial. ok / duplicate serial -> confirmed. Taobao refuses for
 *   good -> the write-off failed, its units are usable again, an operator is told. The outcome stays unknown after
 *   `ambiguousLimit` attempts -> `taobao.reverse` (mode 'consume_unknown'), as Taobao requires.
 * - `taobao.reverse`: mode 'gate' (the gate reversed; units already restored) or 'consume_unknown' (units are
 *   restored once Taobao confirms, or once "serial not found" persists: the consume never landed).
 *
 * Every handler is safe to repeat: state changes are conditional on the write-off's state.
 */
import type { EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import { appendEvent, appendEventStatements } from '../outbox/outbox';
import { loadOrderForUpdate, saveOrderSnapshot } from '../orders/order-store';
import type { Database } from '../persistence/database';
import { WriteOffEntity } from '../persistence/entities/write-off.entity';
import type { TopClient } from '../taobao/top-client';
import { TopRequestError } from '../taobao/top-client';
import { enqueueWork } from '../work/work-queue';
import type { WorkContext, WorkHandler, WorkOutcome } from '../work/work-runner';
import { undoAdmission } from '../domain/order';
import { GATE_EXCEPTIONS, GATE_WORK, raiseException, restoreVoucherUnits, TAOBAO_UPSTREAM } from './admission-desk';
import { GateDeviceEntity } from './gate-device.entity';
import { TickBatch } from '../support/tick-batch';

export type TopWriteOffClient = Pick<TopClient, 'consume' | 'reverse'>;

export interface WriteOffWorkOptions {
  readonly top: TopWriteOffClient;
  /** Attempts whose outcome was ambiguous before the consume is given up and reversed (default 3). */
  readonly ambiguousLimit?: number;
  /** Attempts answering "serial not found" before a reverse concludes the consume never landed (default 3). */
  readonly notFoundLimit?: number;
  readonly products?: { resolve(outerIid: string | null, subOuterIid: string | null): Promise<{ scenicSpotCode: string } | undefined> };
}

export interface ConsumePayload {
  readonly writeOffId: string;
}

export interface ReversePayload {
  readonly writeOffId: string;
  readonly mode: 'gate' | 'consume_unknown';
}

const SERIAL_NOT_FOUND = 'isv.eticket-reverse-error:consume-serial-num-not-found';

/** What the handlers use of a write-off, its order and its code. */
interface Loaded {
  readonly w: WriteOffRef & { readonly state: WriteOffEntity['state'] };
  readonly order: { readonly taobaoOrderId: string; readonly token: string };
  readonly voucherCode: string;
  readonly posid: string | null;
}

type WriteOffRef = Pick<WriteOffEntity, 'id' | 'orderId' | 'voucherId' | 'serialNum' | 'count'>;

// One statement for the write-offs of the items that run together, their orders and codes (fixed SQL: typeorm's find
// options cost more than the read).
const loadSql = (n: number) => `SELECT w.id, w.order_id AS orderId, w.voucher_id AS voucherId, w.serial_num AS serialNum, w.count, w.state, w.posid,
    o.taobao_order_id AS taobaoOrderId, o.token, o.outer_iid AS outerIid, o.sub_outer_iid AS subOuterIid, v.code AS voucherCode
  FROM write_offs w JOIN orders o ON o.id = w.order_id JOIN vouchers v ON v.id = w.voucher_id
  WHERE w.id IN (${Array.from({ length: n }, () => '?').join(', ')})`;

interface LoadRow {
  readonly id: string;
  readonly orderId: string;
  readonly voucherId: number | string;
  readonly serialNum: string;
  readonly count: number | string;
  readonly state: WriteOffEntity['state'];
  readonly posid: string | null;
  readonly taobaoOrderId: string;
  readonly token: string;
  readonly outerIid: string | null;
  readonly subOuterIid: string | null;
  readonly voucherCode: string;
}

/** Per database: the write-off reads of items running at the same time, merged into one statement. */
const rowReads = new WeakMap<Database, TickBatch<string, LoadRow>>();

function readRow(db: Database, writeOffId: string): Promise<LoadRow | undefined> {
  let reads = rowReads.get(db);
  if (!reads) {
    reads = new TickBatch(async (ids) => {
      const rows = (await db.read((em) => em.query(loadSql(ids.length), [...ids]))) as LoadRow[];
      return new Map(rows.map((r) => [r.id, r]));
    });
    rowReads.set(db, reads);
  }
  return reads.load(writeOffId);
}

async function load(db: Database, writeOffId: string, opts: WriteOffWorkOptions): Promise<Loaded | undefined> {
  const row = await readRow(db, writeOffId);
  if (!row) return undefined;
  let posid = row.posid;
  if (!posid && opts.products) {
    // A supplier-reported admission recorded before any device of its scenic spot was registered.
    const p = await opts.products.resolve(row.outerIid, row.subOuterIid);
    const d = p
      ? await db.read((em) => em.findOne(GateDeviceEntity, { where: { scenicSpotCode: p.scenicSpotCode, status: 'enabled' }, order: { deviceCode: 'ASC' } }))
      : null;
    posid = d?.posid ?? null;
  }
  return {
    w: { id: row.id, orderId: row.orderId, voucherId: Number(row.voucherId), serialNum: row.serialNum, count: Number(row.count), state: row.state },
    order: { taobaoOrderId: row.taobaoOrderId, token: row.token },
    voucherCode: row.voucherCode,
    posid,
  };
}

/** Units back on the ledger and the code; the write-off moves from `from` to `to`. False when it had moved already. */
async function restoreUnits(
  em: EntityManager,
  w: WriteOffRef,
  from: readonly WriteOffEntity['state'][],
  to: 'failed' | 'reversed',
  reason: string,
  clock: Clock,
): Promise<boolean> {
  const now = clock.now();
  const loaded = await loadOrderForUpdate(em, w.orderId, { withWriteOffs: true });
  const current = await em.findOne(WriteOffEntity, { where: { id: w.id } });
  if (!current || !from.includes(current.state)) return false;
  const next = undoAdmission(loaded.snapshot, w.serialNum, now);
  if (!next.ok) throw new Error(`write-off ${w.id} cannot be undone on its order: ${next.reason}`);
  await em.update(WriteOffEntity, { id: w.id, state: current.state }, { state: to, reversedAt: now, reverseReason: reason.slice(0, 255) });
  await saveOrderSnapshot(em, loaded, next.value, now);
  await restoreVoucherUnits(em, w.voucherId, w.count);
  if (to === 'failed') {
    await appendEvent(em, { orderId: w.orderId, type: 'write-off.failed', payload: { writeOffId: w.id, reason } }, clock);
  } else {
    await appendEvent(em, { orderId: w.orderId, type: 'write-off.reversed', payload: { writeOffId: w.id, quantity: w.count, reason } }, clock);
  }
  return true;
}

export function consumeHandler(opts: WriteOffWorkOptions): WorkHandler<ConsumePayload> {
  const ambiguousLimit = Math.max(1, opts.ambiguousLimit ?? 3);
  return async (ctx: WorkContext<ConsumePayload>): Promise<WorkOutcome> => {
    const loaded = await load(ctx.db, String(ctx.payload?.writeOffId ?? ''), opts);
    if (!loaded) return { outcome: 'park', error: `write-off ${String(ctx.payload?.writeOffId)} not found` };
    const { w, order, voucherCode, posid } = loaded;
    if (w.state === 'failed' || w.state === 'conflict' || w.state === 'confirmed') return { outcome: 'done' };
    if (!posid) return { outcome: 'park', error: `write-off ${w.id}: no posid (register a gate device for its scenic spot, then replay)` };
    let outcome;
    try {
      outcome = await opts.top.consume({ orderId: order.taobaoOrderId, verifyCode: voucherCode, consumeNum: w.count, token: order.token, posid, serialNum: w.serialNum });
    } catch (err) {
      if (err instanceof TopRequestError) return { outcome: 'park', error: `write-off ${w.id}: ${err.message}` };
      throw err;
    }
    const clock = ctx.clock;
    switch (outcome.kind) {
      case 'ok':
      case 'already_done':
        return {
          outcome: 'done',
          record: {
            statements: (em) => [
              { sql: `UPDATE write_offs SET state = 'confirmed' WHERE id = ? AND state = 'recorded'`, params: [w.id] },
              ...appendEventStatements(em, [{ orderId: w.orderId, type: 'write-off.confirmed', payload: { writeOffId: w.id, quantity: w.count } }], clock),
            ],
            // Already confirmed by an earlier run, or the gate reversed it meanwhile: nothing to confirm.
            held: ([confirmed]) => confirmed?.affected === 1,
          },
        };
      case 'terminal': {
        const reason = `Taobao refused the consume: ${outcome.subCode ?? outcome.code} ${outcome.message}`;
        await ctx.db.transaction(async (em) => {
          // A write-off the gate reversed meanwhile already gave its units back.
          if (await restoreUnits(em, w, ['recorded'], 'failed', reason, clock)) {
            await raiseException(em, GATE_EXCEPTIONS.failed, w.orderId, `write-off ${w.id} (serial ${w.serialNum}, ${w.count} unit(s)): ${reason}; units restored`, clock.now(), clock);
          }
        });
        return { outcome: 'done' };
      }
      case 'retryable':
        if (outcome.ambiguous && ctx.attempt >= ambiguousLimit) {
          // Taobao's rule: a consume whose outcome stays unknown is reversed under its serial.
          await ctx.db.transaction((em) =>
            enqueueWork(
              em,
              {
                idempotencyKey: `${GATE_WORK.reverse}:unknown:${w.serialNum}`,
                orderId: w.orderId,
                kind: GATE_WORK.reverse,
                upstream: TAOBAO_UPSTREAM,
                payload: { writeOffId: w.id, mode: 'consume_unknown' } satisfies ReversePayload,
              },
              clock,
            ),
          );
          return { outcome: 'done' };
        }
        return { outcome: 'retry', error: `consume ${w.serialNum}: ${outcome.subCode ?? outcome.code} ${outcome.message}`, ambiguous: outcome.ambiguous };
    }
  };
}

export function reverseHandler(opts: WriteOffWorkOptions): WorkHandler<ReversePayload> {
  const notFoundLimit = Math.max(1, opts.notFoundLimit ?? 3);
  return async (ctx: WorkContext<ReversePayload>): Promise<WorkOutcome> => {
    const loaded = await load(ctx.db, String(ctx.payload?.writeOffId ?? ''), opts);
    if (!loaded) return { outcome: 'park', error: `write-off ${String(ctx.payload?.writeOffId)} not found` };
    const { w, order, voucherCode, posid } = loaded;
    const mode = ctx.payload.mode === 'consume_unknown' ? 'consume_unknown' : 'gate';
    if (mode === 'consume_unknown' && w.state !== 'recorded') return { outcome: 'done' };
    if (!posid) return { outcome: 'park', error: `write-off ${w.id}: no posid for the reverse` };
    let outcome;
    try {
      outcome = await opts.top.reverse({ orderId: order.taobaoOrderId, reverseCode: voucherCode, reverseNum: w.count, consumeSerialNum: w.serialNum, token: order.token, posid });
    } catch (err) {
      if (err instanceof TopRequestError) return { outcome: 'park', error: `write-off ${w.id}: ${err.message}` };
      throw err;
    }
    const clock = ctx.clock;
    const notFound = outcome.kind === 'terminal' && outcome.subCode === SERIAL_NOT_FOUND;
    if (outcome.kind === 'retryable') {
      return { outcome: 'retry', error: `reverse ${w.serialNum}: ${outcome.subCode ?? outcome.code} ${outcome.message}`, ambiguous: outcome.ambiguous };
    }
    if (outcome.kind === 'terminal' && !notFound) {
      return { outcome: 'park', error: `reverse of write-off ${w.id} (serial ${w.serialNum}) refused: ${outcome.subCode ?? outcome.code} ${outcome.message}` };
    }
    if (mode === 'gate') return { outcome: 'done' }; // reversed, or Taobao never held it: nothing left to undo there
    // consume_unknown: a consume still in flight at Taobao also answers "not found" for a while.
    if (notFound && ctx.attempt < notFoundLimit) return { outcome: 'retry', error: `reverse ${w.serialNum}: consume not found yet` };
    const reason = notFound ? 'consume outcome unknown; Taobao never recorded it' : 'consume outcome unknown; reversed at Taobao';
    await ctx.db.transaction(async (em) => {
      if (await restoreUnits(em, w, ['recorded'], notFound ? 'failed' : 'reversed', reason, clock)) {
        await raiseException(em, GATE_EXCEPTIONS.reversedUnknown, w.orderId, `write-off ${w.id} (serial ${w.serialNum}, ${w.count} unit(s)): ${reason}; units restored although the visitor was admitted`, clock.now(), clock);
      }
    });
    return { outcome: 'done' };
  };
}

/** Registers both handlers on a WorkRunner. */
export function registerWriteOffWork(runner: { register<P>(kind: string, handler: WorkHandler<P>): unknown }, opts: WriteOffWorkOptions): void {
  runner.register(GATE_WORK.consume, consumeHandler(opts));
  runner.register(GATE_WORK.reverse, reverseHandler(opts));
}
