/**
 * The Taobao channel as one module for the composition root: the notice endpoint and the work handlers of the
 * flows it starts (supplier placement and resend, TOP send/resend/failsend).
 */
import type { GatewayConfig } from '../config';
import type { Clock } from '../domain/model';
import type { HttpServer } from '../http/http-server';
import type { GatewayMetrics } from '../observability/metrics';
import { placeOrderHandler } from '../orders/order-issuing';
import { TAOBAO_FLOW_WORK, type FlowLog, type ProductResolver, type RefundIntake, type SupplierLookup } from '../orders/order-ports';
import { supplierResendHandler } from '../orders/order-resend';
import type { Database } from '../persistence/database';
import type { OrderRepository } from '../persistence/order-repository';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import type { WorkRunner } from '../work/work-runner';
import { NoticeIntake } from './notice-intake';
import { taobaoNoticeRoutes } from './notice-routes';
import { registerTaobaoWork } from './taobao-work';
import { TopClient } from './top-client';
import { createTaobaoTop, noticeKeyFrom, type TaobaoTop } from './top-sandbox';

export interface TaobaoChannelDeps {
  readonly config: GatewayConfig;
  readonly db: Database;
  readonly orders: OrderRepository;
  readonly protector: PersonalDataProtector;
  readonly refunds: RefundIntake;
  readonly products: ProductResolver;
  readonly suppliers: SupplierLookup;
  readonly clock: Clock;
  readonly log: FlowLog;
  readonly metrics?: GatewayMetrics;
  /** Defaults to the TOP client from config (or the TOP sandbox without TAOBAO_TOP_URL). */
  readonly top?: TaobaoTop;
  /** Attempts an unmapped product waits before failsend (default 6). */
  readonly unmappedProductAttempts?: number;
}

export class TaobaoChannel {
  readonly intake: NoticeIntake;
  readonly top: TaobaoTop;

  constructor(private readonly deps: TaobaoChannelDeps) {
    this.top = deps.top ?? createTaobaoTop(deps.config, { log: deps.log, clock: deps.clock });
    this.intake = new NoticeIntake({
      db: deps.db,
      orders: deps.orders,
      protector: deps.protector,
      refunds: deps.refunds,
      products: deps.products,
      noticeKey: noticeKeyFrom(deps.config, deps.log),
      maxAgeMs: deps.config.TAOBAO_NOTICE_MAX_AGE_MS,
      clock: deps.clock,
      log: deps.log,
      metrics: deps.metrics,
    });
  }

  /** POST /taobao/notices. */
  registerRoutes(http: HttpServer): void {
    taobaoNoticeRoutes(http, this.intake);
  }

  /** supplier.place_order, supplier.resend, taobao.send, taobao.resend, taobao.failsend. */
  registerWork(runner: WorkRunner): void {
    const { products, suppliers, protector, log } = this.deps;
    runner.register(TAOBAO_FLOW_WORK.placeOrder, placeOrderHandler({ products, suppliers, protector, log, unmappedProductAttempts: this.deps.unmappedProductAttempts }));
    runner.register(TAOBAO_FLOW_WORK.supplierResend, supplierResendHandler({ suppliers, protector, log }));
    // QR images need qrcode.upload, which only the real TOP client makes (the sandbox only logs).
    const top = this.top;
    const qr = top instanceof TopClient ? { suppliers, upload: (bytes: Uint8Array, name: string) => top.qrcodeUpload(bytes, name) } : undefined;
    registerTaobaoWork(runner, { top, log, qr });
  }
}
