/**
 * An outside state the table does not know is raised for operators — an operator_exceptions row of kind
 * `unmapped_outside_state` (+ the `exception.raised` event when an order is concerned) and the metric
 * `unmapped_outside_states_total{system}` — and is listed by the admin RPC. Never mapped to a default.
 * A state already raised for the same order and still unresolved is not raised again (polls repeat it).
 */
import { IsNull, type EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import type { Database } from '../persistence/database';
import { OperatorExceptionEntity } from '../persistence/entities/operator-exception.entity';
import { raiseOperatorException } from '../refunds/operator-exceptions';
import { UnknownSupplierStateError } from '../suppliers/supplier-errors';
import { STATE_MAPPING_VERSION, stateTable, type MappedState, type OutsideSystem, type StateTable } from './state-table';

export const UNMAPPED_OUTSIDE_STATE = 'unmapped_outside_state';

export interface UnmappedOutsideState {
  readonly system: OutsideSystem;
  readonly field: string;
  /** The value as received (redacted, at most 64 characters). */
  readonly value: string;
  /** Where it was read, e.g. "lianhe queryOrder", "callback lh-main". */
  readonly context: string;
  readonly orderId: string | null;
}

export interface UnmappedStateRecord extends UnmappedOutsideState {
  readonly exceptionId: number;
  readonly tableVersion: number;
  readonly raisedAt: number;
  readonly resolvedAt: number | null;
}

export interface UnmappedStateDeps {
  readonly clock: Clock;
  /** Counts each newly raised state by system (prom-client Counter). */
  readonly counter?: { inc(labels: { system: string }): void };
  readonly table?: StateTable;
}

function detailOf(s: UnmappedOutsideState): string {
  return JSON.stringify({ system: s.system, field: s.field, value: s.value, context: s.context, tableVersion: STATE_MAPPING_VERSION });
}

function cleanValue(v: string): string {
  return redactPersonalData(v).slice(0, 64);
}

/** Raises an unmapped outside state inside the caller's transaction; false when it was already open. */
export async function raiseUnmappedState(em: EntityManager, state: UnmappedOutsideState, deps: UnmappedStateDeps): Promise<boolean> {
  const s = { ...state, value: cleanValue(state.value), context: redactPersonalData(state.context).slice(0, 200) };
  const detail = detailOf(s);
  const open = await em.findOne(OperatorExceptionEntity, {
    where: { kind: UNMAPPED_OUTSIDE_STATE, orderId: s.orderId === null ? IsNull() : s.orderId, detail, resolvedAt: IsNull() },
  });
  if (open) return false;
  await raiseOperatorException(em, { orderId: s.orderId, kind: UNMAPPED_OUTSIDE_STATE, detail }, deps.clock);
  deps.counter?.inc({ system: s.system });
  return true;
}

/**
 * Looks an outside state up; an unknown one is raised (in `em`'s transaction) and comes back as undefined,
 * so the caller leaves that piece of truth alone instead of guessing.
 */
export async function mapOutsideState(
  em: EntityManager,
  input: { system: OutsideSystem; field: string; value: string; context: string; orderId: string | null },
  deps: UnmappedStateDeps,
): Promise<MappedState | undefined> {
  const mapped = (deps.table ?? stateTable).lookup(input.system, input.field, input.value);
  if (!mapped) await raiseUnmappedState(em, input, deps);
  return mapped;
}

/** The system of a supplier's UnknownSupplierStateError (adapters throw it where they read states). */
export function systemOfSupplier(supplierCode: string): OutsideSystem {
  return supplierCode === 'lianhe' || supplierCode === 'zhiyoubao' ? supplierCode : 'supplier';
}

/** Raises an adapter's UnknownSupplierStateError as an unmapped outside state. */
export async function raiseUnknownSupplierState(em: EntityManager, err: UnknownSupplierStateError, orderId: string | null, deps: UnmappedStateDeps): Promise<boolean> {
  return raiseUnmappedState(em, { system: systemOfSupplier(err.supplier), field: err.field, value: err.value, context: `${err.supplier} ${err.context}`, orderId }, deps);
}

/** The raised unmapped states, newest first (bounded). */
export async function listUnmappedStates(db: Database, opts: { includeResolved?: boolean; limit?: number } = {}): Promise<UnmappedStateRecord[]> {
  const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
  const rows = await db.read((em) =>
    em.find(OperatorExceptionEntity, {
      where: opts.includeResolved ? { kind: UNMAPPED_OUTSIDE_STATE } : { kind: UNMAPPED_OUTSIDE_STATE, resolvedAt: IsNull() },
      order: { id: 'DESC' },
      take: limit,
    }),
  );
  const out: UnmappedStateRecord[] = [];
  for (const r of rows) {
    let d: Partial<Record<'system' | 'field' | 'value' | 'context', string>> & { tableVersion?: number } = {};
    try {
      d = JSON.parse(r.detail) as typeof d;
    } catch {
      d = { context: r.detail };
    }
    out.push({
      exceptionId: Number(r.id),
      system: (d.system ?? 'supplier') as OutsideSystem,
      field: d.field ?? '',
      value: d.value ?? '',
      context: d.context ?? '',
      orderId: r.orderId,
      tableVersion: d.tableVersion ?? 0,
      raisedAt: Number(r.createdAt),
      resolvedAt: r.resolvedAt === null ? null : Number(r.resolvedAt),
    });
  }
  return out;
}
