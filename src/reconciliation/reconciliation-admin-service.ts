/**
 * ticketgateway.admin.v1.ReconciliationService: run reconciliation on demand, list unmapped outside states.
 */
import { status } from '@grpc/grpc-js';
import type { Database } from '../persistence/database';
import { GrpcFault } from '../grpc/grpc-errors';
import { listUnmappedStates } from '../state-mapping/unmapped-states';
import type {
  ListUnmappedOutsideStatesRequest,
  ListUnmappedOutsideStatesResponse,
  ReconciliationReport as ProtoReport,
  RunReconciliationRequest,
  RunReconciliationResponse,
} from '../gen/ticketgateway/admin/v1/reconciliation';
import type { ReconciliationReport, Reconciler } from './reconciler';

export function toProtoReport(r: ReconciliationReport): ProtoReport {
  return {
    startTime: new Date(r.startedAt),
    endTime: new Date(r.endedAt),
    ordersChecked: r.ordersChecked,
    ordersInStep: r.ordersInStep,
    ordersWithProblems: r.ordersWithProblems,
    driftCounts: { ...r.driftCounts },
    healed: r.healed,
    stateMappingVersion: r.stateMappingVersion,
    orders: r.orders.map((o) => ({
      orderId: o.orderId,
      supplier: o.supplier,
      state: o.state,
      ours: { ...o.ours },
      supplierCounts: o.supplierCounts ? { ...o.supplierCounts } : undefined,
      supplierState: o.supplierState ?? '',
      supplierNeutralStatus: o.supplierNeutralStatus ?? '',
      taobaoRemaining: o.taobaoRemaining ?? -1,
      drifts: o.drifts.map((d) => ({ kind: d.kind, detail: d.detail, ours: d.ours ?? 0, theirs: d.theirs ?? 0, healed: d.healed })),
      problems: [...o.problems],
    })),
  };
}

export function reconciliationServiceHandlers(deps: { db: Database; reconciler?: Reconciler }) {
  return {
    async runReconciliation(req: RunReconciliationRequest): Promise<RunReconciliationResponse> {
      if (!deps.reconciler) throw new GrpcFault(status.UNIMPLEMENTED, 'reconciliation is not configured on this gateway', 'RECONCILIATION_NOT_CONFIGURED');
      const orderId = req.orderId.trim();
      if (orderId.length > 64) throw GrpcFault.invalidArgument('order_id', 'is longer than 64 characters');
      if (req.batchSize < 0 || req.batchSize > 1000) throw GrpcFault.invalidArgument('batch_size', 'must be between 0 and 1000');
      if (orderId !== '') {
        const report = await deps.reconciler.reconcileOrders([orderId]);
        if (report.ordersChecked === 0) throw GrpcFault.notFound('order', orderId);
        return { report: toProtoReport(report) };
      }
      return { report: toProtoReport(await deps.reconciler.runBatch(req.batchSize || undefined)) };
    },

    async listUnmappedOutsideStates(req: ListUnmappedOutsideStatesRequest): Promise<ListUnmappedOutsideStatesResponse> {
      if (req.pageSize < 0 || req.pageSize > 1000) throw GrpcFault.invalidArgument('page_size', 'must be between 0 and 1000');
      const rows = await listUnmappedStates(deps.db, { includeResolved: req.includeResolved, limit: req.pageSize || 100 });
      return {
        states: rows.map((r) => ({
          exceptionId: String(r.exceptionId),
          system: r.system,
          field: r.field,
          value: r.value,
          context: r.context,
          orderId: r.orderId ?? '',
          stateMappingVersion: r.tableVersion,
          raiseTime: new Date(r.raisedAt),
          resolveTime: r.resolvedAt === null ? undefined : new Date(r.resolvedAt),
        })),
      };
    },
  };
}
