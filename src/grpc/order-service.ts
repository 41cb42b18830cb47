/**
 * ticketgateway.orders.v1.OrderService: read access to orders for internal services, plus what is refundable
 * and an idempotent cancellation (refunds/refund-service.ts).
 */
import { status } from '@grpc/grpc-js';
import { OrderState as DomainOrderState, type Clock } from '../domain/model';
import type { RefundableReason as DomainRefundableReason } from '../domain/order';
import type { CancelOrderResult, RefundService } from '../refunds/refund-service';
import type { RefundView } from '../refunds/refund-requests';
import type { RefundAuditState as DomainAuditState } from '../persistence/entities/refund-request.entity';
import {
  OrderState as ProtoOrderState,
  RefundableReason as ProtoRefundableReason,
  RefundAuditState as ProtoAuditState,
  type CancelOrderRequest,
  type CancelOrderResponse,
  type GetRefundableRequest,
  type GetRefundableResponse,
  type Refund,
  type GetOrderRequest,
  type GetOrderResponse,
  type ListOrdersRequest,
  type ListOrdersResponse,
  type Order,
  type WatchOrderRequest,
  type WatchOrderResponse,
} from '../gen/ticketgateway/orders/v1/orders';
import { TooManyWatchersError, type OrderWatch } from './order-watch';
import { InvalidPageTokenError, type OrderRepository, type OrderView } from '../persistence/order-repository';
import { GrpcFault } from './grpc-errors';

const TO_PROTO_STATE: Record<DomainOrderState, ProtoOrderState> = {
  [DomainOrderState.Received]: ProtoOrderState.ORDER_STATE_RECEIVED,
  [DomainOrderState.Issuing]: ProtoOrderState.ORDER_STATE_ISSUING,
  [DomainOrderState.Issued]: ProtoOrderState.ORDER_STATE_ISSUED,
  [DomainOrderState.PartiallyConsumed]: ProtoOrderState.ORDER_STATE_PARTIALLY_CONSUMED,
  [DomainOrderState.Consumed]: ProtoOrderState.ORDER_STATE_CONSUMED,
  [DomainOrderState.RefundPendingAudit]: ProtoOrderState.ORDER_STATE_REFUND_PENDING_AUDIT,
  [DomainOrderState.PartiallyRefunded]: ProtoOrderState.ORDER_STATE_PARTIALLY_REFUNDED,
  [DomainOrderState.Refunded]: ProtoOrderState.ORDER_STATE_REFUNDED,
  [DomainOrderState.Expired]: ProtoOrderState.ORDER_STATE_EXPIRED,
  [DomainOrderState.IssueFailed]: ProtoOrderState.ORDER_STATE_ISSUE_FAILED,
  [DomainOrderState.Closed]: ProtoOrderState.ORDER_STATE_CLOSED,
};

const FROM_PROTO_STATE = new Map<ProtoOrderState, DomainOrderState>(
  Object.entries(TO_PROTO_STATE).map(([d, p]) => [p, d as DomainOrderState]),
);

export function toProtoOrder(o: OrderView): Order {
  return {
    id: o.id,
    taobaoOrderId: o.taobaoOrderId,
    state: TO_PROTO_STATE[o.state],
    outerIid: o.outerIid ?? '',
    subOuterIid: o.subOuterIid ?? '',
    itemTitle: o.itemTitle ?? '',
    unitPriceFen: String(o.unitPriceFen),
    ledger: { ...o.ledger },
    mobileMasked: o.mobileMasked ?? '',
    idCardMasked: o.idCardMasked ?? '',
    validStartTime: new Date(o.validStart),
    validEndTime: new Date(o.validEnd),
    supplier: o.supplier ?? '',
    supplierOrderIds: [o.supplierOrderId, ...o.supplierSubOrderIds].filter((x): x is string => !!x),
    vouchers: o.vouchers.map((v) => ({ code: v.code, total: v.total, remaining: v.remaining })),
    createTime: new Date(o.createdAt),
    updateTime: new Date(o.updatedAt),
  };
}

const MAX_ID = 64;

function instant(field: string, d: Date | undefined): number | undefined {
  if (d === undefined) return undefined;
  const t = d.getTime();
  if (!Number.isFinite(t)) throw GrpcFault.invalidArgument(field, 'is not a valid timestamp');
  return t;
}

const TO_PROTO_REASON: Record<DomainRefundableReason, ProtoRefundableReason> = {
  REFUNDABLE: ProtoRefundableReason.REFUNDABLE_REASON_REFUNDABLE,
  NOT_ISSUED: ProtoRefundableReason.REFUNDABLE_REASON_NOT_ISSUED,
  NOTHING_UNUSED: ProtoRefundableReason.REFUNDABLE_REASON_NOTHING_UNUSED,
  EXPIRED_REFUND_DEADLINE_PASSED: ProtoRefundableReason.REFUNDABLE_REASON_EXPIRED_REFUND_DEADLINE_PASSED,
};

const TO_PROTO_AUDIT: Record<DomainAuditState, ProtoAuditState> = {
  pending_submit: ProtoAuditState.REFUND_AUDIT_STATE_PENDING_SUBMIT,
  pending_audit: ProtoAuditState.REFUND_AUDIT_STATE_PENDING_AUDIT,
  approved: ProtoAuditState.REFUND_AUDIT_STATE_APPROVED,
  rejected: ProtoAuditState.REFUND_AUDIT_STATE_REJECTED,
  failed: ProtoAuditState.REFUND_AUDIT_STATE_FAILED,
};

export function toProtoRefund(r: RefundView): Refund {
  return {
    id: r.id,
    orderId: r.orderId,
    quantity: r.quantity,
    auditState: TO_PROTO_AUDIT[r.auditState],
    origin: r.origin,
    buyerRefundFen: String(r.buyerRefundFen ?? 0),
    createTime: new Date(r.createdAt),
    updateTime: new Date(r.updatedAt),
  };
}

/** A refused cancellation as a gRPC status with its machine-readable reason and figures. */
function cancelFault(r: Extract<CancelOrderResult, { ok: false }>): GrpcFault {
  const code =
    r.reason === 'ORDER_NOT_FOUND' ? status.NOT_FOUND : r.reason === 'INVALID_QUANTITY' || r.reason === 'REQUEST_ID_REUSED' ? status.INVALID_ARGUMENT : status.FAILED_PRECONDITION;
  const details: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.details)) details[k] = String(v);
  if (r.details.expiredRefundDeadline !== undefined) details.expiredRefundDeadlineTime = new Date(Number(r.details.expiredRefundDeadline)).toISOString();
  return new GrpcFault(code, r.message, r.reason, details);
}

function requiredId(field: string, value: string): string {
  const id = value.trim();
  if (id === '') throw GrpcFault.invalidArgument(field, 'is required');
  if (id.length > MAX_ID) throw GrpcFault.invalidArgument(field, `is longer than ${MAX_ID} characters`);
  return id;
}

function refundsOf(deps: { refunds?: RefundService }): RefundService {
  if (!deps.refunds) throw new GrpcFault(status.UNIMPLEMENTED, 'refunds are not configured on this gateway', 'REFUNDS_NOT_CONFIGURED');
  return deps.refunds;
}

export function orderServiceHandlers(deps: { orders: OrderRepository; clock: Clock; refunds?: RefundService; watch?: OrderWatch }) {
  return {
    async *watchOrder(req: WatchOrderRequest, _ctx: unknown, call: { cancelled: boolean; once(event: 'cancelled', cb: () => void): unknown }): AsyncGenerator<WatchOrderResponse> {
      const orderId = requiredId('order_id', req.orderId);
      const after = Number(req.afterSequence || '0');
      if (!Number.isSafeInteger(after) || after < 0) throw GrpcFault.invalidArgument('after_sequence', 'must be a sequence received earlier, or 0');
      if (!deps.watch) throw new GrpcFault(status.UNIMPLEMENTED, 'order watching is not configured on this gateway', 'WATCH_NOT_CONFIGURED');
      if (!(await deps.orders.findById(orderId))) throw GrpcFault.notFound('order', orderId);
      const cancelled = new AbortController();
      call.once('cancelled', () => cancelled.abort());
      if (call.cancelled) return;
      let events: AsyncIterable<{ sequence: number; event: WatchOrderResponse['event'] }>;
      try {
        events = deps.watch.watch(orderId, after, cancelled.signal);
      } catch (err) {
        if (err instanceof TooManyWatchersError) throw new GrpcFault(status.RESOURCE_EXHAUSTED, err.message, 'TOO_MANY_WATCHERS');
        throw err;
      }
      for await (const e of events) yield { sequence: String(e.sequence), event: e.event };
    },

    async getRefundable(req: GetRefundableRequest): Promise<GetRefundableResponse> {
      const orderId = requiredId('order_id', req.orderId);
      const view = await refundsOf(deps).getRefundable(orderId);
      if (!view) throw GrpcFault.notFound('order', orderId);
      const r = view.refundable;
      return {
        orderId: view.orderId,
        state: TO_PROTO_STATE[view.state],
        ledger: { ...view.ledger },
        refundableQuantity: r.count,
        refundableFromAvailable: r.fromAvailable,
        refundableFromExpired: r.fromExpired,
        reason: TO_PROTO_REASON[r.reason],
        expiredRefundDeadline: new Date(r.expiredRefundDeadline),
      };
    },

    async cancelOrder(req: CancelOrderRequest): Promise<CancelOrderResponse> {
      const orderId = requiredId('order_id', req.orderId);
      const requestId = requiredId('request_id', req.requestId);
      if (!Number.isSafeInteger(req.quantity) || req.quantity <= 0) throw GrpcFault.invalidArgument('quantity', 'must be a positive number of units');
      const result = await refundsOf(deps).cancelOrder({ orderId, quantity: req.quantity, callerRequestId: requestId });
      if (!result.ok) throw cancelFault(result);
      return { refund: toProtoRefund(result.refund), replayed: result.replayed };
    },

    async getOrder(req: GetOrderRequest): Promise<GetOrderResponse> {
      const id = req.id.trim();
      if (id === '') throw GrpcFault.invalidArgument('id', 'is required');
      if (id.length > MAX_ID) throw GrpcFault.invalidArgument('id', `is longer than ${MAX_ID} characters`);
      const order = await deps.orders.findById(id);
      if (!order) throw GrpcFault.notFound('order', id);
      return { order: toProtoOrder(order) };
    },

    async listOrders(req: ListOrdersRequest): Promise<ListOrdersResponse> {
      if (req.pageSize < 0) throw GrpcFault.invalidArgument('page_size', 'must not be negative');
      let state: DomainOrderState | undefined;
      if (req.state !== ProtoOrderState.ORDER_STATE_UNSPECIFIED) {
        state = FROM_PROTO_STATE.get(req.state);
        if (!state) throw GrpcFault.invalidArgument('state', `unknown order state ${req.state}`);
      }
      for (const [field, value] of [['supplier', req.supplier], ['product', req.product], ['taobao_order_id', req.taobaoOrderId]] as const) {
        if (value.length > MAX_ID) throw GrpcFault.invalidArgument(field, `is longer than ${MAX_ID} characters`);
      }
      const createdFrom = instant('create_time_from', req.createTimeFrom);
      const createdTo = instant('create_time_to', req.createTimeTo);
      if (createdFrom !== undefined && createdTo !== undefined && createdFrom > createdTo) {
        throw GrpcFault.invalidArgument('create_time_to', 'is before create_time_from');
      }
      try {
        const page = await deps.orders.list(
          {
            state,
            supplier: req.supplier || undefined,
            product: req.product || undefined,
            taobaoOrderId: req.taobaoOrderId || undefined,
            createdFrom,
            createdTo,
          },
          req.pageSize || undefined,
          req.pageToken || undefined,
        );
        return { orders: page.orders.map(toProtoOrder), nextPageToken: page.nextPageToken ?? '' };
      } catch (err) {
        if (err instanceof InvalidPageTokenError) throw GrpcFault.invalidArgument('page_token', 'is not a token this service issued');
        throw err;
      }
    },
  };
}
