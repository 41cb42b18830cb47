/**
 * ticketgateway.admin.v1.WorkAdminService: operators list parked outside calls, replay or abandon them.
 * Wire into the GrpcServer with `server.addService(WorkAdminServiceService, workAdminServiceHandlers({ db, clock }))`.
 */
import { status } from '@grpc/grpc-js';
import type { Clock } from '../domain/model';
import {
  WorkStatus,
  type AbandonWorkRequest,
  type AbandonWorkResponse,
  type ListParkedWorkRequest,
  type ListParkedWorkResponse,
  type ReplayWorkRequest,
  type ReplayWorkResponse,
  type WorkItem,
} from '../gen/ticketgateway/admin/v1/work_admin';
import type { Database } from '../persistence/database';
import type { WorkItemStatus } from '../persistence/entities/work-item.entity';
import { abandonWork, InvalidWorkPageTokenError, listParkedWork, MAX_PARKED_PAGE_SIZE, replayWork, type WorkAdminResult } from '../work/work-admin';
import type { WorkItemView } from '../work/work-queue';
import { GrpcFault } from './grpc-errors';

const TO_PROTO_STATUS: Record<WorkItemStatus, WorkStatus> = {
  pending: WorkStatus.WORK_STATUS_PENDING,
  in_flight: WorkStatus.WORK_STATUS_IN_FLIGHT,
  done: WorkStatus.WORK_STATUS_DONE,
  parked: WorkStatus.WORK_STATUS_PARKED,
  abandoned: WorkStatus.WORK_STATUS_ABANDONED,
};

const MAX_REASON = 500;

export function toProtoWorkItem(w: WorkItemView): WorkItem {
  return {
    id: String(w.id),
    idempotencyKey: w.idempotencyKey,
    orderId: w.orderId ?? '',
    kind: w.kind,
    upstream: w.upstream,
    status: TO_PROTO_STATUS[w.status],
    attempts: w.attempts,
    nextAttemptTime: new Date(w.nextAttemptAt),
    lastError: w.lastError ?? '',
    createTime: new Date(w.createdAt),
    updateTime: new Date(w.updatedAt),
  };
}

function workId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw) || Number(raw) <= 0) throw GrpcFault.invalidArgument('id', 'must be a positive work item id');
  return Number(raw);
}

function unwrap(result: WorkAdminResult, id: number, action: string): WorkItem {
  if (result.ok) return toProtoWorkItem(result.item);
  if (result.reason === 'not_found') throw GrpcFault.notFound('work item', String(id));
  throw new GrpcFault(status.FAILED_PRECONDITION, `work item ${id} is ${result.status}; cannot ${action} it`, 'WORK_ITEM_WRONG_STATUS', {
    status: result.status,
  });
}

export function workAdminServiceHandlers(deps: { db: Database; clock: Clock }) {
  return {
    async listParkedWork(req: ListParkedWorkRequest): Promise<ListParkedWorkResponse> {
      if (req.pageSize < 0) throw GrpcFault.invalidArgument('page_size', 'must not be negative');
      if (req.pageSize > MAX_PARKED_PAGE_SIZE) throw GrpcFault.invalidArgument('page_size', `must be at most ${MAX_PARKED_PAGE_SIZE}`);
      try {
        const page = await listParkedWork(deps.db, { pageSize: req.pageSize || undefined, pageToken: req.pageToken || undefined });
        return { items: page.items.map(toProtoWorkItem), nextPageToken: page.nextPageToken ?? '' };
      } catch (err) {
        if (err instanceof InvalidWorkPageTokenError) throw GrpcFault.invalidArgument('page_token', 'is not a token this service issued');
        throw err;
      }
    },

    async replayWork(req: ReplayWorkRequest): Promise<ReplayWorkResponse> {
      const id = workId(req.id);
      return { item: unwrap(await replayWork(deps.db, id, deps.clock), id, 'replay') };
    },

    async abandonWork(req: AbandonWorkRequest): Promise<AbandonWorkResponse> {
      const id = workId(req.id);
      const reason = req.reason.trim();
      if (reason === '') throw GrpcFault.invalidArgument('reason', 'is required');
      if (reason.length > MAX_REASON) throw GrpcFault.invalidArgument('reason', `is longer than ${MAX_REASON} characters`);
      return { item: unwrap(await abandonWork(deps.db, id, reason, deps.clock), id, 'abandon') };
    },
  };
}
