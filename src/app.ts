/**
 * The composition root: the one place that builds every part of the gateway and wires them together.
 * Tests start the same Gateway on 127.0.0.1:0, so what they exercise is what production runs.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type GatewayConfig } from './config';
import { systemClock, type Clock } from './domain/model';
import { createLogger, type Logger } from './observability/logger';
import { GatewayMetrics } from './observability/metrics';
import { registerSpineMetrics } from './observability/spine-metrics';
import { openDatabase, type Database } from './persistence/database';
import { OrderRepository } from './persistence/order-repository';
import { GrpcServer } from './grpc/grpc-server';
import { CallerAuthenticator, ServiceTokenError } from './grpc/caller-auth';
import { orderServiceHandlers } from './grpc/order-service';
import { OrderWatch } from './grpc/order-watch';
import { withStateChecks } from './state-mapping/callback-states';
import { raiseUnknownSupplierState } from './state-mapping/unmapped-states';
import { Reconciler } from './reconciliation/reconciler';
import { reconciliationServiceHandlers } from './reconciliation/reconciliation-admin-service';
import { ReconciliationServiceService } from './gen/ticketgateway/admin/v1/reconciliation';
import { RefundService } from './refunds/refund-service';
import { registerRefundWork } from './refunds/refund-work';
import { onRefundAudit } from './refunds/refund-audit';
import { ExpiryScheduler } from './expiry/expiry-scheduler';
import { OrderServiceService } from './gen/ticketgateway/orders/v1/orders';
import { HttpServer } from './http/http-server';
import { healthRoutes } from './http/health-routes';
import { BreakerRegistry } from './breakers/breaker-registry';
import { WorkRunner } from './work/work-runner';
import { WorkPurge } from './work/work-purge';
import { TAOBAO_FLOW_WORK } from './orders/order-ports';
import { startOutboxRelay, type OutboxRelay } from './outbox/outbox-relay';
import { KafkaEventPublisher } from './outbox/kafka-event-publisher';
import type { EventPublisher } from './outbox/event-publisher';
import { workAdminServiceHandlers } from './grpc/work-admin-service';
import { WorkAdminServiceService } from './gen/ticketgateway/admin/v1/work_admin';
import { PersonalDataProtector } from './security/personal-data-protector';
import { checkCatalogSuppliers, DbProductDirectory, readProductCatalogFile } from './suppliers/product-directory';
import { loadSupplierDirectory, type SupplierDirectory } from './suppliers/supplier-directory';
import { CallbackSinkRegistry, registerSupplierCallbackRoutes } from './suppliers/callback-routes';
import { AdmissionDesk, onSupplierAdmission } from './gates/admission-desk';
import { DeviceRegistry } from './gates/device-registry';
import { registerWriteOffWork } from './gates/write-off-work';
import { WriteOffTopSandbox } from './gates/write-off-top-sandbox';
import { gateAdminServiceHandlers } from './grpc/gate-admin-service';
import { admissionServiceHandlers } from './grpc/gate-admission-service';
import { AdmissionServiceService, GateAdminServiceService } from './gen/ticketgateway/gates/v1/gates';
import { TopClient } from './taobao/top-client';
import { productAdminServiceHandlers } from './grpc/product-admin-service';
import { ProductAdminServiceService } from './gen/ticketgateway/admin/v1/product_admin';
import { handleCancelNotice, handleValidityChangeNotice } from './refunds/refund-intake';
import { TaobaoChannel } from './taobao/taobao-channel';

export interface GatewayOptions {
  config: GatewayConfig;
  clock?: Clock;
  logger?: Logger;
  /** Collect Node default metrics (off in tests that start many gateways in one process). */
  defaultMetrics?: boolean;
}

/**
 * The personal-data key: required with an external database (every replica must share it); on the embedded
 * default it is created once under DATA_DIR so a fresh machine runs with no configuration at all.
 */
export function resolvePersonalDataKey(config: GatewayConfig): string {
  if (config.PERSONAL_DATA_KEY) return config.PERSONAL_DATA_KEY;
  if (config.DATABASE_URL) {
    throw new ConfigError('PERSONAL_DATA_KEY', 'is required when DATABASE_URL is set (all replicas must share one key)');
  }
  const file = join(config.DATA_DIR, 'personal-data.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(config.DATA_DIR, { recursive: true });
  const key = randomBytes(32).toString('base64url');
  writeFileSync(file, key + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}

/** Service tokens for internal gRPC callers; none configured leaves those APIs open, loudly. */
function callerAuthenticator(config: GatewayConfig, log: Logger): CallerAuthenticator {
  let auth: CallerAuthenticator;
  try {
    auth = CallerAuthenticator.fromConfig(config);
  } catch (err) {
    if (err instanceof ServiceTokenError) throw new ConfigError(err.key, err.message);
    throw err;
  }
  if (auth.enabled) log.info({ callers: auth.callerNames }, 'internal gRPC callers authenticate with service tokens');
  else log.warn('SERVICE_TOKENS is not set: internal gRPC APIs (orders, admin) accept unauthenticated callers');
  return auth;
}

/** The reliable spine every module uses: breakers per upstream, the durable work runner, the outbox relay. */
export interface GatewaySpine {
  readonly breakers: BreakerRegistry;
  readonly workRunner: WorkRunner;
  /** Deletes finished work items past WORK_RETENTION_MS. */
  readonly workPurge: WorkPurge;
  /** Undefined when no broker is configured: events then stay queryable in outbox_events. */
  readonly relay: OutboxRelay | undefined;
  readonly publisher: EventPublisher | undefined;
}

function createSpine(config: GatewayConfig, db: Database, clock: Clock, log: Logger, grpc: GrpcServer, http: HttpServer, metrics: GatewayMetrics): GatewaySpine {
  const spineMetrics = registerSpineMetrics(metrics, db, clock);
  const breakers = new BreakerRegistry();
  breakers.onStateChange(spineMetrics.breakerStateChanged);
  // Breaker state is part of health: one component per upstream, NOT_SERVING while its breaker is open.
  breakers.onStateChange((upstream, state) => {
    grpc.health.setStatus(`upstream:${upstream}`, state === 'open' ? 'NOT_SERVING' : 'SERVING');
    log.warn({ upstream, state }, 'circuit breaker state changed');
  });
  const workRunner = new WorkRunner({
    db,
    breakers,
    clock,
    concurrency: config.WORK_CONCURRENCY,
    maxAttempts: config.WORK_MAX_ATTEMPTS,
    backoffBaseMs: config.WORK_BACKOFF_BASE_MS,
    backoffMaxMs: config.WORK_BACKOFF_MAX_MS,
    leaseMs: config.WORK_LEASE_MS,
    logger: log.child({ component: 'work' }),
    onOutcome: spineMetrics.workAttempt,
    // Taobao waits for a notice's ack and a gate for its answer; durable work can lag a burst.
    foregroundInFlight: () => grpc.unaryCallsInFlight + http.requestsInFlight,
  });
  const kafkaLog = log.child({ component: 'kafka' });
  const publisher = config.KAFKA_BROKERS
    ? new KafkaEventPublisher({
        clientId: config.KAFKA_CLIENT_ID,
        brokers: config.KAFKA_BROKERS,
        log: (r) => kafkaLog[r.level === 'debug' ? 'debug' : r.level]({ namespace: r.namespace, ...r.fields }, r.message),
      })
    : undefined;
  const relay = startOutboxRelay({
    db,
    publisher,
    clock,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
    retentionMs: config.OUTBOX_RETENTION_MS,
    batchSize: config.OUTBOX_BATCH_SIZE,
    logger: log.child({ component: 'outbox' }),
    onPublished: spineMetrics.outboxPublished,
    onPublishFailed: (count) => spineMetrics.outboxPublishFailed(count),
  });
  const workPurge = new WorkPurge({
    db,
    clock,
    retentionMs: config.WORK_RETENTION_MS,
    // The codes last sent to Taobao, and the QR images uploaded for them, are read from an order's send/resend items.
    keepKinds: [TAOBAO_FLOW_WORK.taobaoSend, TAOBAO_FLOW_WORK.taobaoResend],
    logger: log.child({ component: 'work' }),
  });
  return { breakers, workRunner, workPurge, relay, publisher };
}

export class Gateway {
  private ready = false;
  /** Stopped first at shutdown (before the servers): order watchers, the reconciliation job. */
  private readonly stopHooks: Array<() => void | Promise<void>> = [];

  private constructor(
    readonly config: GatewayConfig,
    readonly log: Logger,
    readonly metrics: GatewayMetrics,
    readonly db: Database,
    readonly grpc: GrpcServer,
    readonly http: HttpServer,
    readonly grpcPort: number,
    readonly httpPort: number,
    readonly spine: GatewaySpine,
    /** Supplier instances from SUPPLIERS_FILE (issue 4). */
    readonly supplierDirectory: SupplierDirectory,
    /** Product mappings (Taobao item -> supplier ticket type), with the admin operations. */
    readonly productDirectory: DbProductDirectory,
    /** Where modules register handlers for verified supplier callbacks. */
    readonly callbackSinks: CallbackSinkRegistry,
    /** The expiry sweep (issue 7). */
    readonly expiry: ExpiryScheduler,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const { config } = opts;
    const clock = opts.clock ?? systemClock;
    const log = opts.logger ?? createLogger(config.LOG_LEVEL);
    const metrics = new GatewayMetrics({ defaultMetrics: opts.defaultMetrics });
    const protector = new PersonalDataProtector(resolvePersonalDataKey(config));
    // Supplier instances and the catalog file are checked before anything is opened: a typo stops start-up.
    const suppliers = loadSupplierDirectory(config.SUPPLIERS_FILE, { clock });
    const catalog = config.PRODUCT_CATALOG_FILE ? readProductCatalogFile(config.PRODUCT_CATALOG_FILE) : undefined;
    if (catalog) checkCatalogSuppliers(catalog, suppliers.instances());

    const db = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DATABASE_POOL_SIZE, logger: log });
    const orders = new OrderRepository(db);

    const grpc = new GrpcServer(log, metrics, callerAuthenticator(config, log));

    const http = new HttpServer(log, metrics);
    const spine = createSpine(config, db, clock, log, grpc, http, metrics);
    grpc.addService(WorkAdminServiceService, workAdminServiceHandlers({ db, clock }));

    let gateway: Gateway | undefined;

    // ---- modules: each registers its HTTP routes, gRPC services and work handlers here ----

    // Suppliers (issue 4): product mappings + admin RPCs, one callback route per supplier instance.
    const products = new DbProductDirectory(db, {
      clock,
      isKnownSupplier: (c) => suppliers.get(c) !== undefined,
      knownSuppliers: () => suppliers.instances(),
      cacheTtlMs: config.PRODUCT_CACHE_TTL_MS,
    });
    grpc.addService(ProductAdminServiceService, productAdminServiceHandlers({ products }));
    const callbackSinks = new CallbackSinkRegistry();
    registerSupplierCallbackRoutes(http, { db, suppliers, sinks: callbackSinks, clock, metrics });

    // Taobao channel (issue 3): POST /taobao/notices + supplier placement/resend and TOP send/resend/failsend work.
    const taobao = new TaobaoChannel({
      config,
      db,
      orders,
      protector,
      refunds: { handleCancelNotice, handleValidityChangeNotice },
      products,
      suppliers,
      clock,
      log: log.child({ component: 'taobao' }),
      metrics,
    });
    taobao.registerRoutes(http);
    taobao.registerWork(spine.workRunner);

    // Refunds and expiry (issue 7): OrderService (with GetRefundable/CancelOrder), supplier refund/audit/validity
    // work, refund-audit callbacks, and the expiry sweep.
    const refunds = new RefundService({ db, clock, products, log: log.child({ component: 'refunds' }) });
    const orderWatch = new OrderWatch(db);
    grpc.addService(OrderServiceService, orderServiceHandlers({ orders, clock, refunds, watch: orderWatch }));
    // Outside states (issue 7): unknown ones are raised for operators wherever they are read.
    const unmappedStates = { clock, counter: metrics.unmappedOutsideStates };
    registerRefundWork(spine.workRunner, {
      suppliers,
      products,
      settings: { auditTimeoutMs: config.REFUND_AUDIT_TIMEOUT_MS, pollBaseMs: config.REFUND_AUDIT_POLL_BASE_MS, pollMaxMs: config.REFUND_AUDIT_POLL_MAX_MS },
      log: log.child({ component: 'refunds' }),
      onUnknownState: (em, err, orderId) => raiseUnknownSupplierState(em, err, orderId, unmappedStates),
    });
    callbackSinks.register(withStateChecks({
      onRefundAudit: async (em, cb, d) => {
        await onRefundAudit(em, cb, { clock: d.clock, log: d.log });
      },
    }, unmappedStates));
    const expiry = new ExpiryScheduler({
      db,
      clock,
      products,
      log: log.child({ component: 'expiry' }),
      intervalMs: config.EXPIRY_SWEEP_INTERVAL_MS,
      batchSize: config.EXPIRY_SWEEP_BATCH_SIZE,
    });

    // Gates (issue 6): device registry + admin RPCs, AdmissionService, consume/reverse work, supplier-reported admissions.
    const devices = new DeviceRegistry(db, { clock, cacheMs: config.GATE_DEVICE_CACHE_MS });
    const admissionDesk = new AdmissionDesk({ db, products, protector, clock });
    grpc.addService(GateAdminServiceService, gateAdminServiceHandlers({ devices }));
    grpc.addService(AdmissionServiceService, admissionServiceHandlers({
      desk: admissionDesk,
      devices,
      clock,
      onDecided: (result, method) => metrics.gateAdmissions.inc({ result, method }),
    }), { callers: 'self-authenticated' });
    registerWriteOffWork(spine.workRunner, {
      top: taobao.top instanceof TopClient ? taobao.top : new WriteOffTopSandbox(log.child({ component: 'gates' })),
      ambiguousLimit: config.GATE_CONSUME_AMBIGUOUS_LIMIT,
      notFoundLimit: config.GATE_REVERSE_NOT_FOUND_LIMIT,
      products,
    });
    callbackSinks.register(withStateChecks({
      onAdmission: (em, cb, d) => onSupplierAdmission(em, cb, { instanceCode: d.instanceCode, clock: d.clock, receivedAt: d.receivedAt }),
    }, unmappedStates));

    // Reconciliation (issue 7): ledger vs supplier queryOrder and Taobao codes.get, on a timer and by admin RPC.
    const reconciler = new Reconciler({
      db,
      clock,
      suppliers,
      taobao: taobao.top instanceof TopClient ? taobao.top : undefined,
      metrics,
      log: log.child({ component: 'reconciliation' }),
      batchSize: config.RECONCILIATION_BATCH_SIZE,
      lookbackMs: config.RECONCILIATION_LOOKBACK_MS,
    });
    grpc.addService(ReconciliationServiceService, reconciliationServiceHandlers({ db, reconciler }));

    // ---- end of modules ----

    healthRoutes(http, { metrics, isReady: async () => (gateway?.ready ?? false) && (await db.ping()) });

    try {
      if (catalog) {
        const loaded = await products.loadCatalog(catalog);
        log.info({ file: config.PRODUCT_CATALOG_FILE, ...loaded }, 'product catalog loaded');
      }
      const orphans = await products.orphans();
      if (orphans.length > 0) {
        log.warn({ mappings: orphans.slice(0, 20).map((m) => `${m.outerIid}/${m.subOuterIid ?? ''} -> ${m.supplierInstance}`), count: orphans.length }, 'product mappings name supplier instances that are not configured');
      }
      const grpcPort = await grpc.listen(config.GRPC_PORT, config.GRPC_HOST);
      const httpPort = await http.listen(config.HTTP_PORT, config.HTTP_HOST);
      gateway = new Gateway(config, log, metrics, db, grpc, http, grpcPort, httpPort, spine, suppliers, products, callbackSinks, expiry);
    } catch (err) {
      await spine.relay?.stop();
      await spine.publisher?.close().catch(() => undefined);
      spine.breakers.shutdown();
      grpc.server.forceShutdown();
      await http.close(0).catch(() => undefined);
      await db.close();
      throw err;
    }
    gateway.stopHooks.push(() => orderWatch.close(), () => reconciler.stop());
    reconciler.start(config.RECONCILIATION_INTERVAL_MS);
    spine.workRunner.start();
    spine.workPurge.start();
    expiry.start();
    gateway.ready = true;
    log.info({ grpcPort: gateway.grpcPort, httpPort: gateway.httpPort, database: db.kind }, 'ticket-gateway started');
    return gateway;
  }

  /** Graceful stop: not ready, stop accepting, finish in-flight calls within the grace period, close the database. */
  async stop(): Promise<void> {
    this.ready = false;
    const grace = this.config.SHUTDOWN_GRACE_MS;
    for (const hook of this.stopHooks) await hook();
    await Promise.all([this.grpc.close(grace), this.http.close(grace), this.expiry.stop(), this.spine.workPurge.stop()]);
    // In-flight outside calls finish (or their leases expire and another replica takes them over).
    await Promise.all([this.spine.workRunner.stop(grace), this.spine.relay?.stop()]);
    await this.spine.publisher?.close().catch((err: unknown) => this.log.warn({ err }, 'event publisher did not close cleanly'));
    this.spine.breakers.shutdown();
    await this.db.close();
    this.log.info('ticket-gateway stopped');
  }
}
