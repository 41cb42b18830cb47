/**
 * ticketgateway.orders.v1.OrderService: read access to orders for internal services.
 */
import { OrderState as DomainOrderState, type Clock } from '../domain/model';
import {
  OrderState as ProtoOrderState,
  type GetOrderRequest,
  type GetOrderResponse,
  type ListOrdersRequest,
  type ListOrdersResponse,
  type Order,
} from '../gen/ticketgateway/orders/v1/orders';
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

export function orderServiceHandlers(deps: { orders: OrderRepository; clock: Clock }) {
  return {
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
