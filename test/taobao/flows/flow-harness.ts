/**
 * The Taobao channel assembled from real pieces for flow tests: a migrated database (SQLite or MariaDB), the
 * HTTP server with POST /taobao/notices, a WorkRunner with the channel's handlers, the real TopClient against the
 * signature-verifying TopSimulator, the sandbox supplier (and optionally Lianhe against its simulator), the
 * database product directory and the refund engineer's intake functions.
 */
import { In } from 'typeorm';
import { configSchema } from '../../../src/config';
import { CheckMethod, systemClock, type Clock } from '../../../src/domain/model';
import { HttpServer } from '../../../src/http/http-server';
import { createLogger } from '../../../src/observability/logger';
import { GatewayMetrics } from '../../../src/observability/metrics';
import { TAOBAO_FLOW_WORK } from '../../../src/orders/order-ports';
import type { Database } from '../../../src/persistence/database';
import { WorkItemEntity } from '../../../src/persistence/entities/work-item.entity';
import { OrderRepository } from '../../../src/persistence/order-repository';
import { handleCancelNotice, handleValidityChangeNotice } from '../../../src/refunds/refund-intake';
import { PersonalDataProtector } from '../../../src/security/personal-data-protector';
import { LianheAdapter } from '../../../src/suppliers/lianhe/lianhe-adapter';
import { DbProductDirectory } from '../../../src/suppliers/product-directory';
import { SandboxAdapter } from '../../../src/suppliers/sandbox/sandbox-adapter';
import type { SupplierAdapter } from '../../../src/suppliers/supplier-adapter';
import { StaticSupplierDirectory } from '../../../src/suppliers/supplier-directory';
import { TaobaoChannel } from '../../../src/taobao/taobao-channel';
import { TAOBAO_NOTICE_PATH } from '../../../src/taobao/notice-routes';
import { TopClient } from '../../../src/taobao/top-client';
import { formatTaobaoTime } from '../../../src/taobao/taobao-time';
import { WorkRunner } from '../../../src/work/work-runner';
import { openTestDatabase, type TestDatabase } from '../../support/database';
import { LianheSimulator } from '../../support/supplier-simulators/lianhe-simulator';
import { buildNotice, type BuildNoticeOptions } from '../../support/taobao-notices';
import { TopSimulator } from '../../support/top-simulator';

export const NOTICE_KEY = 'flow-test-notice-key-0123456789abcdef';
export const TOP_IDENTITY = { appKey: '23456789', appSecret: 'top-secret-for-flow-tests', session: 'sess-6100e', codemerchantId: '1000123' };
export const PERSONAL_KEY = 'flow-test-personal-data-key-0123456789abcdef';
export const ITEM = { outerIid: 'HS-ADULT', subOuterIid: 'HS-ADULT-1', ticketType: 'PST-ADULT' };
export const LIANHE_ITEM = { outerIid: 'LH-ITEM', subOuterIid: 'LH-SKU', ticketType: '9001' };

export const FLOW_KINDS = Object.values(TAOBAO_FLOW_WORK);

export interface FlowHarness {
  readonly tdb: TestDatabase;
  readonly db: Database;
  readonly top: TopSimulator;
  readonly sandbox: SandboxAdapter;
  readonly lianheSim: LianheSimulator;
  readonly metrics: GatewayMetrics;
  readonly protector: PersonalDataProtector;
  readonly channel: TaobaoChannel;
  readonly noticeUrl: string;
  /** A runner with the channel's handlers (fresh instances model a restarted gateway). */
  newRunner(opts?: { leaseMs?: number }): WorkRunner;
  /** Runs due flow work until none is pending/in flight (bounded). */
  drain(runner?: WorkRunner, timeoutMs?: number): Promise<void>;
  post(method: string, fields: Record<string, string>, opts?: BuildNoticeOptions): Promise<{ status: number; text: string; json: unknown }>;
  postRaw(body: Buffer, contentType: string): Promise<{ status: number; text: string }>;
  close(): Promise<void>;
}

export async function startFlowHarness(kind: 'sqlite' | 'mysql', opts: { unmappedProductAttempts?: number; clock?: Clock } = {}): Promise<FlowHarness> {
  const clock = opts.clock ?? systemClock;
  const log = createLogger('silent');
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const tdb = await openTestDatabase(kind);
  const db = tdb.db;
  const top = new TopSimulator(TOP_IDENTITY);
  const lianheSim = new LianheSimulator();
  await top.start();
  await lianheSim.start();
  const sandbox = new SandboxAdapter({}, clock);
  const lianhe = new LianheAdapter(
    { instanceCode: 'lianhe-test', baseUrl: lianheSim.baseUrl, partnerId: lianheSim.partnerId, apiName: lianheSim.apiName, clientSecret: lianheSim.clientSecret },
    clock,
  );
  const suppliers = new StaticSupplierDirectory([sandbox, lianhe as SupplierAdapter]);
  const products = new DbProductDirectory(db, { clock, isKnownSupplier: (c) => suppliers.get(c) !== undefined, knownSuppliers: () => suppliers.instances(), cacheTtlMs: 0 });
  const mapping = { checkMethods: [CheckMethod.Code], realNameRequired: false, validity: { kind: 'days_from_visit' as const, days: 1 }, expiryRefund: { allowed: true, ratioBasisPoints: 10_000 }, scenicSpotCode: 'HS-GATE' };
  await products.upsert({ ...mapping, outerIid: ITEM.outerIid, subOuterIid: ITEM.subOuterIid, supplierInstance: 'sandbox', supplierTicketType: ITEM.ticketType });
  await products.upsert({ ...mapping, outerIid: LIANHE_ITEM.outerIid, subOuterIid: LIANHE_ITEM.subOuterIid, supplierInstance: 'lianhe-test', supplierTicketType: LIANHE_ITEM.ticketType });

  const protector = new PersonalDataProtector(PERSONAL_KEY);
  const config = configSchema.parse({ TAOBAO_NOTICE_KEY: NOTICE_KEY });
  const channel = new TaobaoChannel({
    config,
    db,
    orders: new OrderRepository(db),
    protector,
    refunds: { handleCancelNotice, handleValidityChangeNotice },
    products,
    suppliers,
    clock,
    log,
    metrics,
    top: new TopClient({ routerUrl: top.url, ...TOP_IDENTITY, signMethod: 'hmac', timeoutMs: 1_000, clock }),
    unmappedProductAttempts: opts.unmappedProductAttempts ?? 3,
  });
  const http = new HttpServer(log, metrics);
  channel.registerRoutes(http);
  const port = await http.listen(0, '127.0.0.1');
  const noticeUrl = `http://127.0.0.1:${port}${TAOBAO_NOTICE_PATH}`;
  const runners: WorkRunner[] = [];

  const newRunner = (o: { leaseMs?: number } = {}): WorkRunner => {
    const r = new WorkRunner({ db, clock, pollIntervalMs: 10, backoffBaseMs: 10, backoffMaxMs: 40, leaseMs: o.leaseMs ?? 30_000, attemptTimeoutMs: 5_000, logger: log });
    channel.registerWork(r);
    runners.push(r);
    return r;
  };
  let defaultRunner: WorkRunner | undefined;

  const postRaw = async (body: Buffer, contentType: string) => {
    const res = await fetch(noticeUrl, { method: 'POST', headers: { 'content-type': contentType }, body, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, text: await res.text() };
  };

  return {
    tdb,
    db,
    top,
    sandbox,
    lianheSim,
    metrics,
    protector,
    channel,
    noticeUrl,
    newRunner,
    async drain(runner, timeoutMs = 15_000) {
      const r = runner ?? (defaultRunner ??= newRunner());
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ran = await r.runOnce();
        if (ran > 0) continue;
        const open = await db.read((em) => em.count(WorkItemEntity, { where: { kind: In(FLOW_KINDS), status: In(['pending', 'in_flight']) } }));
        if (open === 0) return;
        if (Date.now() > deadline) throw new Error(`work not drained within ${timeoutMs} ms (${open} open)`);
        await new Promise((res) => setTimeout(res, 15));
      }
    },
    async post(method, fields, o = {}) {
      const n = buildNotice(method, fields, NOTICE_KEY, o);
      const { status, text } = await postRaw(n.body, n.contentType);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status, text, json };
    },
    postRaw,
    async close() {
      for (const r of runners) await r.stop(0).catch(() => undefined);
      await http.close(0).catch(() => undefined);
      await top.stop();
      await lianheSim.close();
      await tdb.drop().catch(() => undefined);
    },
  };
}

let orderSeq = 0;
/** A fresh 16-digit Taobao order id. */
export function newTaobaoOrderId(): string {
  orderSeq++;
  return `${Date.now() % 1e10}${String(orderSeq).padStart(3, '0')}${Math.floor(Math.random() * 900 + 100)}`.slice(0, 16).replace(/^0/, '1');
}

/** A `send` notice's fields, Chinese values included; validity today (GMT+8) to +30 days. */
export function sendFields(orderId: string, extra: Record<string, string> = {}): Record<string, string> {
  const now = Date.now();
  return {
    order_id: orderId,
    token: `tok${orderId}`,
    num: '2',
    mobile: '13812345678',
    num_iid: '522071639483',
    outer_iid: ITEM.outerIid,
    sub_outer_iid: ITEM.subOuterIid,
    item_title: '黄山风景区门票',
    sku_properties: '门票种类:成人票;门票类型:电子票',
    seller_nick: '黄山旅游旗舰店',
    taobao_sid: '92333234',
    send_type: '2',
    consume_type: '2',
    sms_template: '验证码$code.您已成功订购黄山风景区门票,消费时请出示本短信以验证.',
    valid_start: formatTaobaoTime(now - 3600_000),
    valid_ends: formatTaobaoTime(now + 30 * 24 * 3600_000),
    total_fee: '380.00',
    type: '0',
    weeks: '[1,2,3,4,5,6,7]',
    ...extra,
  };
}
