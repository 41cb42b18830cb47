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
import { openDatabase, type Database } from './persistence/database';
import { OrderRepository } from './persistence/order-repository';
import { GrpcServer } from './grpc/grpc-server';
import { orderServiceHandlers } from './grpc/order-service';
import { OrderServiceService } from './gen/ticketgateway/orders/v1/orders';
import { HttpServer } from './http/http-server';
import { healthRoutes } from './http/health-routes';

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

export class Gateway {
  private ready = false;

  private constructor(
    readonly config: GatewayConfig,
    readonly log: Logger,
    readonly metrics: GatewayMetrics,
    readonly db: Database,
    readonly grpc: GrpcServer,
    readonly http: HttpServer,
    readonly grpcPort: number,
    readonly httpPort: number,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const { config } = opts;
    const clock = opts.clock ?? systemClock;
    const log = opts.logger ?? createLogger(config.LOG_LEVEL);
    const metrics = new GatewayMetrics({ defaultMetrics: opts.defaultMetrics });
    resolvePersonalDataKey(config);

    const db = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DATABASE_POOL_SIZE, logger: log });
    const orders = new OrderRepository(db);

    const grpc = new GrpcServer(log, metrics);
    grpc.addService(OrderServiceService, orderServiceHandlers({ orders, clock }));

    const http = new HttpServer(log, metrics);
    let gateway: Gateway | undefined;
    healthRoutes(http, { metrics, isReady: async () => (gateway?.ready ?? false) && (await db.ping()) });

    try {
      const grpcPort = await grpc.listen(config.GRPC_PORT, config.GRPC_HOST);
      const httpPort = await http.listen(config.HTTP_PORT, config.HTTP_HOST);
      gateway = new Gateway(config, log, metrics, db, grpc, http, grpcPort, httpPort);
    } catch (err) {
      grpc.server.forceShutdown();
      await http.close(0).catch(() => undefined);
      await db.close();
      throw err;
    }
    gateway.ready = true;
    log.info({ grpcPort: gateway.grpcPort, httpPort: gateway.httpPort, database: db.kind }, 'ticket-gateway started');
    return gateway;
  }

  /** Graceful stop: not ready, stop accepting, finish in-flight calls within the grace period, close the database. */
  async stop(): Promise<void> {
    this.ready = false;
    const grace = this.config.SHUTDOWN_GRACE_MS;
    await Promise.all([this.grpc.close(grace), this.http.close(grace)]);
    await this.db.close();
    this.log.info('ticket-gateway stopped');
  }
}
