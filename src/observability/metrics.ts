/**
 * The Prometheus registry and the metrics every part of the gateway shares. Label values are bounded
 * (service/method names, result enums) — never order ids or device ids.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class GatewayMetrics {
  readonly registry = new Registry();

  /** nice-grpc / go-grpc-prometheus names, so stock dashboards work. */
  readonly grpcHandled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'gRPC calls completed on the server, by service, method and status code.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'] as const,
    registers: [this.registry],
  });

  readonly grpcHandlingSeconds = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'Time to handle a gRPC call on the server.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'http_server_requests_total',
    help: 'HTTP requests handled, by route and status code.',
    labelNames: ['route', 'code'] as const,
    registers: [this.registry],
  });

  /** Taobao notices by method and result: ok, duplicate, bad_sign, invalid, error (issue 3). */
  readonly taobaoNotices = new Counter({
    name: 'taobao_notices_total',
    help: 'Taobao e-voucher notices received, by method and result.',
    labelNames: ['method', 'result'] as const,
    registers: [this.registry],
  });

  /** From body received to answer ready, the durable commit included. */
  readonly taobaoNoticeAckSeconds = new Histogram({
    name: 'taobao_notice_ack_seconds',
    help: 'Time to acknowledge a Taobao notice (durable commit included).',
    labelNames: ['method', 'result'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  /** Supplier callbacks by instance, type and result: accepted, duplicate, rejected, unhandled, error (issue 4). */
  readonly supplierCallbacks = new Counter({
    name: 'supplier_callbacks_total',
    help: 'Supplier callbacks received, by supplier instance, callback type and result.',
    labelNames: ['supplier', 'type', 'result'] as const,
    registers: [this.registry],
  });

  /** Gate admissions (Redeem and offline uploads) by result reason and check method; Check has no effect and is not counted. */
  readonly gateAdmissions = new Counter({
    name: 'gate_admissions_total',
    help: 'Admissions decided at the gates, by result (ADMITTED or the rejection reason) and check method.',
    labelNames: ['result', 'method'] as const,
    registers: [this.registry],
  });

  /** Outside states the state table (src/state-mapping) does not know; each is also an operator exception. */
  readonly unmappedOutsideStates = new Counter({
    name: 'unmapped_outside_states_total',
    help: 'Outside (Taobao, Alipay, supplier) states seen that the state mapping table does not know, by system.',
    labelNames: ['system'] as const,
    registers: [this.registry],
  });

  /** Differences found by reconciliation between our ledger and the supplier's or Taobao's view, by kind. */
  readonly reconciliationDrift = new Counter({
    name: 'reconciliation_drift_total',
    help: 'Drifts found by reconciliation, by kind (healed ones included).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
