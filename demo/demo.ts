/**
 * `npm run demo`: one order through the whole gateway, in-process, with no servers to install.
 *
 * The gateway starts on its embedded default (SQLite in a throwaway data dir, the sandbox supplier, the built-in TOP
 * sandbox) with a clock the demo can move forward. Then, over the gateway's real doors (HTTP and gRPC):
 *   1. Taobao's signed `send` notice -> the supplier issues the code -> the codes are sent back to Taobao;
 *   2. a gate device is provisioned and admits one visitor by code (Redeem) -> the write-off is confirmed at Taobao;
 *   3. CancelOrder refunds one ticket -> the supplier's audit approves it;
 *   4. the clock moves past the validity end -> the expiry sweep expires what is left;
 * printing each step in plain words with the quantity ledger after it, and the final order as GetOrder returns it.
 * Voucher codes are printed masked and the buyer's mobile never leaves the gateway in clear.
 */
import { credentials, Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway } from '../src/app';
import { configSchema } from '../src/config';
import type { Clock } from '../src/domain/model';
import {
  AdmissionResult,
  AdmissionServiceClient,
  CheckMethod,
  GateAdminServiceClient,
  admissionResultToJSON,
} from '../src/gen/ticketgateway/gates/v1/gates';
import { OrderServiceClient, orderStateToJSON, type Order, type QuantityLedger } from '../src/gen/ticketgateway/orders/v1/orders';
import { createLogger, type Logger } from '../src/observability/logger';
import { maskCode } from '../src/orders/order-issuing';
import { listOrderEvents } from '../src/outbox/outbox';
import { OrderEntity } from '../src/persistence/entities/order.entity';
import { formatTaobaoTime } from '../src/taobao/taobao-time';
import { TAOBAO_NOTICE_PATH } from '../src/taobao/notice-routes';
import { DEV_NOTICE_KEY } from '../src/taobao/top-sandbox';
import { buildNotice } from '../test/support/taobao-notices';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The demo's product: three sandbox tickets at one scenic spot; expired tickets of it are not refunded. */
const PRODUCT = { outerIid: 'DEMO-WEST-LAKE', ticketType: 'WL-ADULT', scenicSpot: 'WEST-LAKE-GATE', tickets: 3, priceFen: 8_000 };
const CATALOG_YAML = `products:
  - outer_iid: ${PRODUCT.outerIid}
    supplier: sandbox
    ticket_type: ${PRODUCT.ticketType}
    scenic_spot: ${PRODUCT.scenicSpot}
    check_methods: [CODE, QR]
    real_name_required: false
    validity: { kind: days_from_visit, days: 2 }
    expiry_refund: { allowed: false, ratio_bp: 0 }
`;
/** A made-up buyer mobile: it goes into the notice, and must never come out in clear. */
export const DEMO_MOBILE = '13900001234';
const DEMO_TAOBAO_ORDER_ID = '4123456789012345';

/** Steps in the order they happen; the demo result lists the ones that did. */
export const DEMO_STEPS = ['send', 'codes_sent', 'gate_provisioned', 'admitted', 'write_off_confirmed', 'refund_requested', 'refund_approved', 'expired'] as const;
export type DemoStep = (typeof DEMO_STEPS)[number];

/** Real time plus an offset the demo moves forward ("two days later"). */
export class DemoClock implements Clock {
  private offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

export interface DemoOptions {
  /** Where each printed line goes (default console.log). */
  readonly print?: (line: string) => void;
  /** Gateway log level (default silent: the demo prints what matters in plain words). */
  readonly logLevel?: 'silent' | 'error' | 'warn' | 'info';
  /** Deadline of each wait for background work (default 15 s). */
  readonly stepTimeoutMs?: number;
}

export interface DemoResult {
  readonly steps: readonly DemoStep[];
  /** The order's events in the order they were recorded. */
  readonly events: readonly string[];
  readonly finalOrder: Order;
  readonly finalLedger: QuantityLedger;
}

export class DemoStepError extends Error {
  override readonly name = 'DemoStepError';
}

/** Runs the walk-through; stops the gateway and removes its data dir whatever happens. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const stepTimeoutMs = opts.stepTimeoutMs ?? 15_000;
  const dir = mkdtempSync(join(tmpdir(), 'ticket-gateway-demo-'));
  const clock = new DemoClock();
  const logger: Logger = createLogger(opts.logLevel ?? 'silent');
  let gw: Gateway | undefined;
  const clients: Array<{ close(): void }> = [];
  try {
    const catalogFile = join(dir, 'catalog.yaml');
    writeFileSync(catalogFile, CATALOG_YAML);
    const config = configSchema.parse({
      DATA_DIR: join(dir, 'data'),
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: opts.logLevel ?? 'silent',
      SHUTDOWN_GRACE_MS: '2000',
      PRODUCT_CATALOG_FILE: catalogFile,
      // The sandbox supplier decides its audit on the first poll; poll soon so the demo does not wait a minute.
      REFUND_AUDIT_POLL_BASE_MS: '200',
      // The demo runs the expiry sweep itself, right after moving the clock.
      EXPIRY_SWEEP_INTERVAL_MS: String(DAY),
    });
    print('ticket-gateway demo: one order from Taobao, through a gate, a refund and expiry.');
    print('Starting the gateway in-process: SQLite in a temporary directory, the sandbox supplier, the built-in TOP sandbox.');
    gw = await Gateway.start({ config, clock, logger, defaultMetrics: false });
    const gateway = gw;
    const target = `127.0.0.1:${gateway.grpcPort}`;
    const orders = new OrderServiceClient(target, credentials.createInsecure());
    const gateAdmin = new GateAdminServiceClient(target, credentials.createInsecure());
    const admission = new AdmissionServiceClient(target, credentials.createInsecure());
    clients.push(orders, gateAdmin, admission);
    print(`  gRPC on ${target}, HTTP on 127.0.0.1:${gateway.httpPort}`);

    const steps: DemoStep[] = [];
    const done = (step: DemoStep) => steps.push(step);
    const eventTypes = async (orderId: string) => (await gateway.db.read((em) => listOrderEvents(em, orderId))).map((e) => e.type);
    const waitForEvent = async (orderId: string, type: string, what: string) => {
      const deadline = Date.now() + stepTimeoutMs;
      while (!(await eventTypes(orderId)).includes(type)) {
        if (Date.now() > deadline) throw new DemoStepError(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };
    const getOrder = async (id: string): Promise<Order> => {
      const res = await unary(orders.getOrder.bind(orders), { id });
      if (!res.order) throw new DemoStepError(`GetOrder returned no order ${id}`);
      return res.order;
    };
    const showLedger = async (id: string) => {
      const o = await getOrder(id);
      print(`  state ${orderStateToJSON(o.state).replace('ORDER_STATE_', '')}; ledger: ${ledgerLine(o.ledger)}`);
    };

    // ---- 1. Taobao sells three tickets and sends its signed `send` notice ----
    print('');
    print(`1. A buyer pays for ${PRODUCT.tickets} tickets on Taobao. Taobao sends a signed "send" notice (GBK form, MD5 signature) to POST ${TAOBAO_NOTICE_PATH}.`);
    const now = clock.now();
    const notice = buildNotice(
      'send',
      {
        order_id: DEMO_TAOBAO_ORDER_ID,
        token: 'demo-token-0001',
        num: String(PRODUCT.tickets),
        mobile: DEMO_MOBILE,
        num_iid: '600000000001',
        outer_iid: PRODUCT.outerIid,
        item_title: '西湖景区成人票',
        seller_nick: '西湖旅游旗舰店',
        taobao_sid: '90000001',
        send_type: '2',
        consume_type: '2',
        sms_template: '验证码$code.您已成功订购西湖景区门票.',
        valid_start: formatTaobaoTime(now - HOUR),
        valid_ends: formatTaobaoTime(now + 2 * DAY),
        total_fee: (PRODUCT.tickets * PRODUCT.priceFen / 100).toFixed(2),
        type: '0',
      },
      DEV_NOTICE_KEY,
      { now },
    );
    const ack = await fetch(`http://127.0.0.1:${gateway.httpPort}${TAOBAO_NOTICE_PATH}`, {
      method: 'POST',
      headers: { 'content-type': notice.contentType },
      body: notice.body,
      signal: AbortSignal.timeout(stepTimeoutMs),
    });
    const ackText = await ack.text();
    if (ackText !== '{"code":200}') throw new DemoStepError(`the notice was answered ${ack.status} ${ackText}`);
    const stored = await gateway.db.read((em) => em.findOne(OrderEntity, { where: { taobaoOrderId: DEMO_TAOBAO_ORDER_ID }, select: { id: true } }));
    if (!stored) throw new DemoStepError('the acknowledged order is not stored');
    const orderId = stored.id;
    done('send');
    print(`  The gateway committed the order (${orderId}) and its work, then answered ${ackText}; the supplier is called in the background.`);

    await waitForEvent(orderId, 'code.sent', 'the codes to reach Taobao');
    const issued = await getOrder(orderId);
    const code = issued.vouchers[0]?.code;
    if (!code) throw new DemoStepError('the issued order has no voucher code');
    done('codes_sent');
    print(`  The sandbox supplier issued code ${maskCode(code)} for ${issued.vouchers[0]!.total} people; eticket.send told Taobao (the TOP sandbox recorded it).`);
    await showLedger(orderId);

    // ---- 2. A gate at the scenic spot admits one visitor ----
    print('');
    print(`2. Operations provision a gate device at ${PRODUCT.scenicSpot} (GateAdminService.ProvisionDevice); a visitor shows the code and one person walks in (AdmissionService.Redeem).`);
    const provisioned = await unary(gateAdmin.provisionDevice.bind(gateAdmin), {
      deviceCode: 'DEMO-GATE-1',
      supplierEnterpriseCode: 'WEST-LAKE',
      scenicSpotCode: PRODUCT.scenicSpot,
      allowedCheckMethods: [CheckMethod.CHECK_METHOD_CODE, CheckMethod.CHECK_METHOD_QR],
      posid: 'DEMO-POS-1',
    });
    done('gate_provisioned');
    print(`  Device ${provisioned.device?.deviceCode} provisioned; its secret is shown once (kept only as a hash by the gateway).`);
    const md = new Metadata();
    md.set('x-device-code', 'DEMO-GATE-1');
    md.set('x-device-secret', provisioned.deviceSecret);
    const redeemed = await unary(admission.redeem.bind(admission), { presented: { voucherCode: code, orderId: '' }, count: 1, clientNonce: 'demo-nonce-1' }, md);
    const outcome = redeemed.outcome;
    if (outcome?.result !== AdmissionResult.ADMISSION_RESULT_ADMITTED) {
      throw new DemoStepError(`the gate was answered ${outcome ? admissionResultToJSON(outcome.result) : 'nothing'}: ${outcome?.message ?? ''}`);
    }
    done('admitted');
    print(`  Gate answer: ${admissionResultToJSON(outcome.result).replace('ADMISSION_RESULT_', '')} ("${outcome.message}"), ${outcome.remaining} left on the code.`);
    await waitForEvent(orderId, 'write-off.confirmed', 'the write-off to be confirmed at Taobao');
    done('write_off_confirmed');
    print('  The write-off went to Taobao as eticket.consume from durable work, after the gate had its answer.');
    await showLedger(orderId);

    // ---- 3. One ticket is refunded; the supplier audits and approves ----
    print('');
    print('3. Customer service refunds one ticket (OrderService.CancelOrder, quantity 1). The supplier must audit it.');
    const cancelled = await unary(orders.cancelOrder.bind(orders), { orderId, quantity: 1, requestId: 'demo-refund-1' });
    done('refund_requested');
    print(`  Refund ${cancelled.refund?.id ?? '?'} requested: the ticket is held as "refund pending" until the audit.`);
    await showLedger(orderId);
    await waitForEvent(orderId, 'refund.approved', "the supplier's refund audit");
    done('refund_approved');
    print("  The gateway polled the supplier's audit: approved. The ticket is refunded.");
    await showLedger(orderId);

    // ---- 4. Time passes: the validity ends and the sweep expires the rest ----
    print('');
    const validEnd = issued.validEndTime?.getTime() ?? clock.now();
    const jump = validEnd - clock.now() + HOUR;
    clock.advance(jump);
    print(`4. The clock moves ${Math.round(jump / HOUR)} hours ahead, past the validity end; the expiry sweep runs.`);
    const swept = await gateway.expiry.sweep();
    const mine = swept.find((s) => s.orderId === orderId);
    if (!mine) throw new DemoStepError('the expiry sweep did not expire the order');
    done('expired');
    print(`  ${mine.expired} unused ticket(s) expired${mine.noRefund === 'EXPIRY_REFUND_NOT_ALLOWED' ? '; this product does not refund expired tickets' : mine.refundId ? `; expiry refund ${mine.refundId} requested` : ''}.`);
    await showLedger(orderId);

    // ---- The order as GetOrder returns it ----
    const finalOrder = await getOrder(orderId);
    const finalLedger = finalOrder.ledger;
    if (!finalLedger) throw new DemoStepError('GetOrder returned no ledger');
    print('');
    print('The order as OrderService.GetOrder returns it (voucher codes masked here):');
    print(JSON.stringify(printable(finalOrder), null, 2));
    print('');
    print(`Final ledger: ${ledgerLine(finalLedger)}`);
    const events = await eventTypes(orderId);
    print(`Events recorded for Kafka (outbox): ${events.join(', ')}`);
    return { steps, events, finalOrder, finalLedger };
  } finally {
    for (const c of clients) c.close();
    await gw?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "purchased 3 · available 0 · consumed 1 · refund pending 0 · refunded 1 · expired 1". */
export function ledgerLine(l: QuantityLedger | undefined): string {
  if (!l) return '(none)';
  return `purchased ${l.purchased} · available ${l.available} · consumed ${l.consumed} · refund pending ${l.refundPending} · refunded ${l.refunded} · expired ${l.expired}`;
}

/** The order for printing: enums by name, codes masked (the buyer's secret). The mobile comes masked already. */
function printable(o: Order): Record<string, unknown> {
  return {
    ...o,
    state: orderStateToJSON(o.state),
    vouchers: o.vouchers.map((v) => ({ ...v, code: maskCode(v.code) })),
  };
}

type Unary<Req, Res> = (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;

/** One unary gRPC call with a deadline. */
function unary<Req, Res>(fn: Unary<Req, Res>, req: Req, md = new Metadata(), timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, md, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(new DemoStepError(`${err.code} ${err.details}`)) : resolve(res)));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

if (require.main === module) {
  runDemo().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
