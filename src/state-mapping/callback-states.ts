/**
 * Supplier callbacks carry outside states (Lianhe orderStatus codes, Zhiyoubao consume/audit statuses). Before a
 * callback takes effect its state is looked up; an unknown one is raised for operators in the same transaction.
 * The callback's own effect (admitted counts, audit decision) still applies: it does not depend on the state.
 */
import type { EntityManager } from 'typeorm';
import type { CallbackSinkDeps, SupplierCallbackSink } from '../suppliers/callback-routes';
import type { SupplierAdapter, SupplierCallback } from '../suppliers/supplier-adapter';
import type { LianheStatusMapping } from '../suppliers/lianhe/lianhe-status';
import { mapOutsideState, raiseUnmappedState, type UnmappedStateDeps } from './unmapped-states';

function lianheStatuses(adapter: SupplierAdapter): LianheStatusMapping | undefined {
  const s = (adapter as { statuses?: LianheStatusMapping }).statuses;
  return s && typeof s.lookup === 'function' ? s : undefined;
}

/** Checks the outside state a callback carries; returns false when it was unknown (and raised). */
export async function checkCallbackState(em: EntityManager, cb: SupplierCallback, deps: CallbackSinkDeps, mapping: UnmappedStateDeps): Promise<boolean> {
  const orderId = cb.ourOrderCode ?? null;
  const context = `${cb.type} callback to ${deps.instanceCode}`;
  const value = cb.type === 'order_finished' ? cb.status : cb.supplierState;
  if (value === undefined || value === '') return true;
  if (deps.adapter.code === 'lianhe') {
    // The instance's configured code table decides (default + SUPPLIERS_FILE overrides).
    const table = lianheStatuses(deps.adapter);
    if (table?.lookup(value) !== undefined) return true;
    await raiseUnmappedState(em, { system: 'lianhe', field: 'orderStatus', value, context, orderId }, mapping);
    return false;
  }
  if (deps.adapter.code === 'zhiyoubao') {
    const field = cb.type === 'admission' ? 'consume_status' : cb.type === 'refund_audit' ? 'auditStatus' : 'finish_status';
    return (await mapOutsideState(em, { system: 'zhiyoubao', field, value, context, orderId }, mapping)) !== undefined;
  }
  return true; // other suppliers (sandbox) send no outside state vocabulary
}

/** Wraps a callback sink so every callback's state is checked against the table first. */
export function withStateChecks(sink: SupplierCallbackSink, mapping: UnmappedStateDeps): SupplierCallbackSink {
  const out: SupplierCallbackSink = {};
  if (sink.onAdmission) {
    const next = sink.onAdmission.bind(sink);
    out.onAdmission = async (em, cb, d) => {
      await checkCallbackState(em, cb, d, mapping);
      await next(em, cb, d);
    };
  }
  if (sink.onRefundAudit) {
    const next = sink.onRefundAudit.bind(sink);
    out.onRefundAudit = async (em, cb, d) => {
      await checkCallbackState(em, cb, d, mapping);
      await next(em, cb, d);
    };
  }
  if (sink.onOrderFinished) {
    const next = sink.onOrderFinished.bind(sink);
    out.onOrderFinished = async (em, cb, d) => {
      await checkCallbackState(em, cb, d, mapping);
      await next(em, cb, d);
    };
  }
  return out;
}
