/**
 * `npm run chaos`: "nothing lost, nothing twice" under faults (issue 9).
 *
 * The driver plays Taobao (signed GBK notices, each delivered 3 times, two of them concurrently; the TOP router
 * as TopSimulator), the supplier (LianheSimulator: 50% HTTP 5xx and some replies slower than the adapter's
 * timeout while faults are on; refund audits decided in its back office and reported by signed reNotify), and
 * the gate (a provisioned device redeeming units over gRPC). The gateway runs as a child process on MariaDB and
 * Kafka (librdkafka mock), and meanwhile: it is SIGKILLed and restarted several times, MariaDB is restarted once,
 * the broker is unreachable for 30 s. After the faults stop and the work settles (bounded), the invariants are
 * checked and the counts printed; any failed invariant exits 1.
 *
 * Knobs: CHAOS_ORDERS (default 2000), CHAOS_IN_FLIGHT (orders driven at once, default 200), CHAOS_KEEP=1 keeps
 * the work dir (gateway log, MariaDB datadir) for inspection.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { Kafka, logLevel } from 'kafkajs';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { assertLedger } from '../src/domain/ledger';
import {
  AdmissionResult,
  AdmissionServiceClient,
  CheckMethod,
  GateAdminServiceClient,
  ProvisionDeviceRequest,
  RedeemRequest,
  type ProvisionDeviceResponse,
  type RedeemResponse,
} from '../src/gen/ticketgateway/gates/v1/gates';
import { formatTaobaoTime } from '../src/taobao/taobao-time';
import { startForwarder, type Forwarder } from '../test/outbox/tcp-forwarder';
import { unary } from '../test/support/grpc-clients';
import { freePort, startKafkaMock, type KafkaMockService } from '../test/support/services';
import { LianheSimulator } from '../test/support/supplier-simulators/lianhe-simulator';
import { buildNotice } from '../test/support/taobao-notices';
import { TopSimulator } from '../test/support/top-simulator';
import { GatewayProcess } from './gateway-process';
import { RestartableMariaDb } from './restartable-mariadb';

const ORDERS = Number(process.env.CHAOS_ORDERS ?? 2000);
const IN_FLIGHT = Number(process.env.CHAOS_IN_FLIGHT ?? 200);
const RUN_BUDGET_MS = 9.5 * 60_000; // hard bound of the whole run
const SETTLE_BUDGET_MS = 2.5 * 60_000;

const NOTICE_KEY = 'chaos-notice-key-0123456789abcdef';
const TOP_IDENTITY = { appKey: '23456789', appSecret: 'top-secret-for-chaos', session: 'sess-chaos', codemerchantId: '1000777' };
const INSTANCE = 'lianhe-chaos';
const OUTER_IID = 'CHAOS-ADULT';
const TOPIC_PREFIX = 'chaos.';
const UNITS = 2;
const AUDIT_WATCH = 'supplier.poll_refund_audit';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const say = (msg: string) => process.stdout.write(`[chaos ${elapsed()}] ${msg}\n`);

// ---------------------------------------------------------------------------------------------------------
// What each order goes through (deterministic by index).

type Plan = { admits: number; cancel: number; approve: boolean };
function planOf(i: number): Plan {
  const approve = Math.floor(i / 10) % 5 !== 0; // 1 in 5 audits is rejected
  switch (i % 10) {
    case 3:
    case 4:
      return { admits: 1, cancel: 0, approve };
    case 5:
      return { admits: 2, cancel: 0, approve };
    case 6:
    case 7:
      return { admits: 0, cancel: 2, approve };
    case 8:
    case 9:
      return { admits: 1, cancel: 1, approve };
    default:
      return { admits: 0, cancel: 0, approve };
  }
}

interface OrderRun {
  readonly i: number;
  readonly tid: string;
  readonly plan: Plan;
  started: boolean;
  issued: boolean;
  admitted: number;
  cancelled: boolean;
  anomalies: string[];
}

const counts = {
  noticePosts: 0,
  noticeAcks: 0,
  noticeUnique: 0,
  noticeFailedPosts: 0,
  redeemCalls: 0,
  redeemFailedCalls: 0,
  auditCallbacks: 0,
  auditFailedDeliveries: 0,
  mariaDbRestarts: 0,
  brokerOutageMs: 0,
};

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const hardStop = setTimeout(() => {
    process.stderr.write('chaos: run budget exceeded, giving up\n');
    process.exit(2);
  }, RUN_BUDGET_MS + 60_000);
  hardStop.unref();

  const work = mkdtempSync(join(tmpdir(), 'tg-chaos-'));
  say(`work dir ${work}; ${ORDERS} orders, ${IN_FLIGHT} in flight`);
  const db = await RestartableMariaDb.create();
  const kafka = await startKafkaMock();
  const brokerPort = await freePort();
  let forwarder: Forwarder | undefined = await startForwarder(brokerPort, kafka.brokers);
  const top = new TopSimulator(TOP_IDENTITY);
  await top.start();
  const lianhe = new LianheSimulator({ deals: ['9001'] });
  await lianhe.start();
  let supplierFaults = false;
  let supplierFaultReplies = 0;
  let supplierFaultWindows = 0;
  // The simulator reads its switches per request: with faults on, half the requests answer 503 and a few are
  // slower than the adapter's 2 s timeout (the client gives up, so they take no effect). Faults come in windows
  // (20 s on, 15 s off): at a steady 50% the breaker (50% threshold, 10 s reset) would keep the supplier shut
  // for the whole run and nothing else would be exercised.
  Object.defineProperty(lianhe.switches, 'serverError', { get: () => supplierFaults && Math.random() < 0.5 && ++supplierFaultReplies > 0 });
  Object.defineProperty(lianhe.switches, 'slowMs', { get: () => (supplierFaults && Math.random() < 0.05 ? 3_000 : 0) });

  const conn0 = await createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
  await conn0.query('CREATE DATABASE chaos CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
  await conn0.end();

  writeFileSync(
    join(work, 'suppliers.json'),
    JSON.stringify({
      [INSTANCE]: { type: 'lianhe', baseUrl: lianhe.baseUrl, partnerId: lianhe.partnerId, apiName: lianhe.apiName, clientSecret: lianhe.clientSecret, timeoutMs: 2_000 },
    }),
  );
  writeFileSync(
    join(work, 'catalog.yaml'),
    `products:
  - outer_iid: ${OUTER_IID}
    supplier: ${INSTANCE}
    ticket_type: '9001'
    scenic_spot: CHAOS-SPOT
    check_methods: [CODE]
    real_name_required: false
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 10000 }
`,
  );
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const gateway = new GatewayProcess(
    {
      DATABASE_URL: `mysql://root@127.0.0.1:${db.port}/chaos`,
      DATABASE_POOL_SIZE: '20',
      PERSONAL_DATA_KEY: 'chaos-personal-data-key-0123456789abcdef',
      DATA_DIR: join(work, 'data'),
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(grpcPort),
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      LOG_LEVEL: 'info', // info: a graceful stop logs its signal
      KAFKA_BROKERS: `127.0.0.1:${brokerPort}`,
      KAFKA_TOPIC_PREFIX: TOPIC_PREFIX,
      SUPPLIERS_FILE: join(work, 'suppliers.json'),
      PRODUCT_CATALOG_FILE: join(work, 'catalog.yaml'),
      TAOBAO_NOTICE_KEY: NOTICE_KEY,
      TAOBAO_TOP_URL: top.url,
      TAOBAO_APP_KEY: TOP_IDENTITY.appKey,
      TAOBAO_APP_SECRET: TOP_IDENTITY.appSecret,
      TAOBAO_SESSION: TOP_IDENTITY.session,
      TAOBAO_CODEMERCHANT_ID: TOP_IDENTITY.codemerchantId,
      TAOBAO_SIGN_METHOD: 'hmac',
      WORK_CONCURRENCY: '32',
      WORK_MAX_ATTEMPTS: '30',
      WORK_BACKOFF_BASE_MS: '200',
      WORK_BACKOFF_MAX_MS: '5000',
      WORK_LEASE_MS: '15000',
      SHUTDOWN_GRACE_MS: '2000',
    },
    join(work, 'gateway.log'),
    httpPort,
  );
  let failed = true;
  try {
    await gateway.start();
    say(`gateway up (grpc ${grpcPort}, http ${httpPort}); MariaDB ${db.port}; broker ${kafka.brokers} behind 127.0.0.1:${brokerPort}`);
    const deviceSecret = await provisionDevice(grpcPort);

    // ---- drive the orders while the faults happen ----
    const runs: OrderRun[] = [];
    const tidBase = 2_000_000_000_000_000 + (Date.now() % 1_000_000) * 1_000_0;
    for (let i = 0; i < ORDERS; i++) runs.push({ i, tid: String(tidBase + i), plan: planOf(i), started: false, issued: false, admitted: 0, cancelled: false, anomalies: [] });
    let driving = true;
    const noticeUrl = `http://127.0.0.1:${httpPort}/taobao/notices`;
    const callbackUrl = `http://127.0.0.1:${httpPort}/suppliers/${INSTANCE}/callback`;
    const gate = new AdmissionServiceClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());

    const auditor = runAuditor(lianhe, db.port, callbackUrl, runs, () => driving);
    const supplierWindows = (async () => {
      while (!driversFinished) {
        supplierFaults = true;
        supplierFaultWindows++;
        for (let t = 0; t < 40 && !driversFinished; t++) await sleep(500);
        supplierFaults = false;
        for (let t = 0; t < 30 && !driversFinished; t++) await sleep(500);
      }
    })();
    const faults = runFaults({ gateway, db, kafka, brokerPort, setForwarder: (f) => (forwarder = f), getForwarder: () => forwarder, driving: () => driving });
    let next = 0;
    let done = 0;
    const drivers = Array.from({ length: IN_FLIGHT }, async () => {
      while (next < runs.length && Date.now() - started < RUN_BUDGET_MS - SETTLE_BUDGET_MS) {
        const run = runs[next++]!;
        run.started = true;
        await driveOrder(run, top, noticeUrl, gate, deviceSecret).catch((e: unknown) => run.anomalies.push(`driver: ${(e as Error).message}`));
        if (++done % 250 === 0) say(`${done}/${runs.length} orders driven`);
      }
    });
    await Promise.all(drivers);
    driversFinished = true;
    say(`all orders driven (${done}); stopping faults`);
    const faultReport = await faults;
    await supplierWindows;
    supplierFaults = false;

    // ---- settle ----
    if (!gateway.running) await gateway.start();
    const settled = await settle(db.port, runs, lianhe, SETTLE_BUDGET_MS);
    driving = false;
    await auditor;
    gate.close();

    // ---- check ----
    const report = await checkInvariants(db.port, runs, top, lianhe, kafka);
    const retries = report.workRetries;
    const line = (k: string, v: string | number) => process.stdout.write(`  ${k.padEnd(34)} ${v}\n`);
    process.stdout.write('\n==== chaos summary ====\n');
    line('orders', `${runs.filter((r) => r.started).length} of ${ORDERS} driven (issued ${report.issued}, admitted units ${report.consumedUnits}, refunded units ${report.refundedUnits}, audits rejected ${report.rejectedAudits})`);
    line('notices acknowledged / unique', `${counts.noticeAcks} / ${counts.noticeUnique} (posts ${counts.noticePosts}, failed posts retried ${counts.noticeFailedPosts})`);
    line('duplicates absorbed', `${counts.noticeAcks - counts.noticeUnique} (inbound_messages rows ${report.inboundTaobao} = unique notices ${counts.noticeUnique})`);
    line('gateway SIGKILLs / restarts / crashes', `${gateway.kills} / ${gateway.starts - 1} / ${gateway.crashes}`);
    line('MariaDB restarts', counts.mariaDbRestarts);
    line('broker outage', `${(counts.brokerOutageMs / 1000).toFixed(1)} s (forwarder closed + broker SIGSTOPped)`);
    line('supplier faults', `${supplierFaultWindows} windows of 20 s: ${supplierFaultReplies} HTTP 503 replies (50%), ~5% replies past the 2 s timeout`);
    line('work retries (attempts beyond first)', retries);
    line('TOP send answers "already sent"', report.topSendAlready);
    line('TOP consume answers "duplicate serial"', report.topConsumeDuplicate);
    line('redeem calls (failed, retried)', `${counts.redeemCalls} (${counts.redeemFailedCalls})`);
    line('audit callbacks (failed deliveries)', `${counts.auditCallbacks} (${counts.auditFailedDeliveries})`);
    line('outbox events / in Kafka (unique)', `${report.outboxEvents} / ${report.kafkaUnique} (messages ${report.kafkaMessages}, redelivered ${report.kafkaMessages - report.kafkaUnique})`);
    line('events by type', report.eventTypes);
    line('audit-timeout watches (48 h, idle)', report.auditWatches);
    line('parked work', `${report.parked}${report.parkedDetail ? ` ${report.parkedDetail}` : ''}`);
    line('operator exceptions', report.exceptionsDetail || '0');
    line('settled', settled ? 'yes' : 'NO (bounded wait ran out)');
    line('lost', report.lost.length);
    line('doubled', report.doubled.length);
    line('other invariant failures', report.other.length);
    for (const p of [...report.lost, ...report.doubled, ...report.other].slice(0, 30)) process.stdout.write(`    - ${p}\n`);
    line('duration', elapsed());
    line('fault timeline', faultReport.join('; '));
    failed = !settled || report.lost.length + report.doubled.length + report.other.length > 0;
    process.stdout.write(failed ? 'CHAOS: FAILED\n' : 'CHAOS: PASSED (lost = 0, doubled = 0)\n');
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).stack ?? err}\n--- gateway log tail ---\n${gateway.logTail()}\n`);
  } finally {
    supplierFaults = false;
    await gateway.stop().catch(() => undefined);
    await forwarder?.close().catch(() => undefined);
    await top.stop();
    await lianhe.close();
    try {
      process.kill(kafka.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    await kafka.stop();
    if (process.env.CHAOS_KEEP === '1') {
      await db.stop();
      say(`kept ${work} and ${db.dir}`);
    } else {
      await db.destroy();
      rmSync(work, { recursive: true, force: true });
    }
  }
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Taobao: notices delivered until acknowledged; each notice delivered 3 times in all.

async function postUntilAcked(url: string, body: Buffer, contentType: string, deadlineMs = 180_000): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    counts.noticePosts++;
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body, signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (res.status === 200) {
        counts.noticeAcks++;
        return text;
      }
    } catch {
      /* gateway down or cut mid-request: Taobao repeats */
    }
    counts.noticeFailedPosts++;
    if (Date.now() > deadline) throw new Error('notice never acknowledged');
    await sleep(300 + Math.random() * 700);
  }
}

async function deliverNotice(url: string, method: string, fields: Record<string, string>): Promise<void> {
  const n = buildNotice(method, fields, NOTICE_KEY);
  counts.noticeUnique++;
  // Taobao's repeats carry the same bytes (same timestamp, same sign): two at once, then a third.
  const answers = await Promise.all([postUntilAcked(url, n.body, n.contentType), postUntilAcked(url, n.body, n.contentType)]);
  answers.push(await postUntilAcked(url, n.body, n.contentType));
  if (answers.some((a) => a !== '{"code":200}')) throw new Error(`${method} answered ${answers.join(' ')}`);
}

function sendFields(tid: string): Record<string, string> {
  const now = Date.now();
  return {
    order_id: tid,
    token: `tok${tid}`,
    num: String(UNITS),
    mobile: '13812345678',
    num_iid: '522071639483',
    outer_iid: OUTER_IID,
    item_title: '混沌测试景区门票',
    sku_properties: '门票种类:成人票',
    seller_nick: '测试旗舰店',
    taobao_sid: '92333234',
    send_type: '2',
    consume_type: '2',
    sms_template: '验证码$code.消费时请出示本短信以验证.',
    valid_start: formatTaobaoTime(now - 3600_000),
    valid_ends: formatTaobaoTime(now + 30 * 24 * 3600_000),
    total_fee: '200.00',
    type: '0',
    weeks: '[1,2,3,4,5,6,7]',
  };
}

async function driveOrder(run: OrderRun, top: TopSimulator, noticeUrl: string, gate: AdmissionServiceClient, deviceSecret: string): Promise<void> {
  const fields = sendFields(run.tid);
  top.addOrder({ orderId: run.tid, token: fields.token!, num: UNITS });
  await deliverNotice(noticeUrl, 'send', fields);

  // Issued = the codes reached Taobao (eticket.send took effect at the simulator).
  const deadline = Date.now() + 200_000;
  while (!top.order(run.tid).sent) {
    if (Date.now() > deadline) return void run.anomalies.push('not issued to Taobao within 200 s');
    await sleep(250);
  }
  run.issued = true;
  const code = top.order(run.tid).codes[0]!.code;

  for (let k = 0; k < run.plan.admits; k++) {
    const res = await redeemUntilAnswered(gate, deviceSecret, code, `c${run.tid}-${k}`);
    if (res.outcome?.result === AdmissionResult.ADMISSION_RESULT_ADMITTED) run.admitted++;
    else run.anomalies.push(`redeem ${k}: ${res.outcome?.result}`);
  }
  if (run.plan.cancel > 0) {
    await deliverNotice(noticeUrl, 'cancel', { order_id: run.tid, token: fields.token!, cancel_num: String(run.plan.cancel) });
    run.cancelled = true;
  }
}

async function redeemUntilAnswered(gate: AdmissionServiceClient, secret: string, code: string, nonce: string): Promise<RedeemResponse> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    counts.redeemCalls++;
    const md = new Metadata();
    md.set('x-device-code', 'CHAOS-GATE-1');
    md.set('x-device-secret', secret);
    try {
      // The same nonce on every try: the gate's retry must admit no one twice.
      return await unary<RedeemRequest, RedeemResponse>(gate, 'redeem', RedeemRequest.fromPartial({ presented: { voucherCode: code, orderId: '' }, count: 1, clientNonce: nonce }), md);
    } catch (err) {
      counts.redeemFailedCalls++;
      if (Date.now() > deadline) throw new Error(`redeem never answered: ${(err as ServiceError).message}`);
      await sleep(500);
    }
  }
}

async function provisionDevice(grpcPort: number): Promise<string> {
  const admin = new GateAdminServiceClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  try {
    const res = await unary<ProvisionDeviceRequest, ProvisionDeviceResponse>(
      admin,
      'provisionDevice',
      ProvisionDeviceRequest.fromPartial({ deviceCode: 'CHAOS-GATE-1', supplierEnterpriseCode: 'CHAOS', scenicSpotCode: 'CHAOS-SPOT', allowedCheckMethods: [CheckMethod.CHECK_METHOD_CODE], posid: 'POS_CHAOS_1' }),
    );
    return res.deviceSecret;
  } finally {
    admin.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// The supplier's back office: decides each refund a few seconds after it was requested and reports it by
// reNotify, repeating the notification until the gateway answers `success`.

async function runAuditor(lianhe: LianheSimulator, dbPort: number, callbackUrl: string, runs: OrderRun[], active: () => boolean): Promise<void> {
  const byTid = new Map(runs.map((r) => [r.tid, r]));
  const tidOfOrder = new Map<string, string>(); // our order code -> Taobao order id
  const firstSeen = new Map<string, number>();
  const delivered = new Set<string>();
  while (active()) {
    await sleep(1_000);
    const pending: Array<[string, string]> = [];
    for (const [orderId, o] of lianhe.orders) {
      for (const refundId of o.refunds.keys()) {
        const key = `${orderId}/${refundId}`;
        if (delivered.has(key)) continue;
        if (!firstSeen.has(key)) firstSeen.set(key, Date.now());
        if (Date.now() - firstSeen.get(key)! >= 3_000) pending.push([orderId, refundId]);
      }
    }
    if (pending.length === 0) continue;
    const unknown = pending.map(([o]) => o).filter((o) => !tidOfOrder.has(o));
    if (unknown.length > 0) {
      try {
        const c = await createConnection({ host: '127.0.0.1', port: dbPort, user: 'root', database: 'chaos', connectTimeout: 2_000 });
        try {
          const [rows] = await c.query<RowDataPacket[]>('SELECT id, taobao_order_id FROM orders WHERE id IN (?)', [unknown]);
          for (const r of rows) tidOfOrder.set(String(r.id), String(r.taobao_order_id));
        } finally {
          await c.end().catch(() => undefined);
        }
      } catch {
        continue; // MariaDB restarting: next round
      }
    }
    await Promise.all(
      pending.map(async ([orderId, refundId]) => {
        const run = byTid.get(tidOfOrder.get(orderId) ?? '');
        if (!run) return;
        counts.auditCallbacks++;
        try {
          const replies = await lianhe.sendRefundAuditCallback(callbackUrl, orderId, refundId, run.plan.approve);
          if (replies.some((r) => r.status === 200 && r.body === 'success')) delivered.add(`${orderId}/${refundId}`);
          else counts.auditFailedDeliveries++;
        } catch {
          counts.auditFailedDeliveries++;
        }
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// The faults, on a timeline, while the orders are driven.

async function runFaults(f: {
  gateway: GatewayProcess;
  db: RestartableMariaDb;
  kafka: KafkaMockService;
  brokerPort: number;
  setForwarder(x: Forwarder | undefined): void;
  getForwarder(): Forwarder | undefined;
  driving(): boolean;
}): Promise<string[]> {
  const timeline: string[] = [];
  const t0 = Date.now();
  const at = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;
  const killAndRestart = async () => {
    await f.gateway.kill();
    timeline.push(`kill@${at()}`);
    await sleep(Math.random() * 2_000);
    await f.gateway.start();
  };
  const steps: Array<() => Promise<void>> = [
    async () => void (await sleep(12_000 + Math.random() * 8_000), await killAndRestart()),
    async () => {
      await sleep(10_000);
      timeline.push(`mariadb-stop@${at()}`);
      await f.db.stop();
      await sleep(3_000);
      await f.db.start();
      counts.mariaDbRestarts++;
      timeline.push(`mariadb-up@${at()}`);
    },
    async () => void (await sleep(8_000 + Math.random() * 8_000), await killAndRestart()),
    async () => {
      await sleep(5_000);
      const began = Date.now();
      timeline.push(`broker-down@${at()}`);
      await f.getForwarder()?.close();
      f.setForwarder(undefined);
      // kafkajs already holds connections to the address the broker advertises (not the forwarder's):
      // freezing the broker makes those unreachable too, without losing what it stores.
      process.kill(f.kafka.pid, 'SIGSTOP');
      await sleep(12_000);
      await killAndRestart(); // a kill during the outage as well
      await sleep(Math.max(0, 30_000 - (Date.now() - began)));
      process.kill(f.kafka.pid, 'SIGCONT');
      f.setForwarder(await startForwarder(f.brokerPort, f.kafka.brokers));
      counts.brokerOutageMs = Date.now() - began;
      timeline.push(`broker-up@${at()}`);
    },
  ];
  for (const step of steps) {
    if (!f.driving()) break;
    await step();
  }
  // Then a kill every 15-35 s until the orders are all driven.
  while (f.driving() && Date.now() - started < RUN_BUDGET_MS - SETTLE_BUDGET_MS) {
    const wait = 15_000 + Math.random() * 20_000;
    const until = Date.now() + wait;
    while (Date.now() < until && f.driving() && !(await driversDone())) await sleep(500);
    if (await driversDone()) break;
    await killAndRestart();
  }
  return timeline;
}
let driversFinished = false;
const driversDone = async () => driversFinished;

// ---------------------------------------------------------------------------------------------------------

async function query<T extends RowDataPacket>(dbPort: number, sql: string, params: unknown[] = []): Promise<T[]> {
  const c: Connection = await createConnection({ host: '127.0.0.1', port: dbPort, user: 'root', database: 'chaos', connectTimeout: 5_000, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await c.query<T[]>(sql, params);
    return rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Waits (bounded) until no work is open, every event is published and every expected refund is decided. */
async function settle(dbPort: number, runs: OrderRun[], lianhe: LianheSimulator, budgetMs: number): Promise<boolean> {
  const deadline = Date.now() + budgetMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      // A callback-only supplier's refund gets an audit-timeout watch due REFUND_AUDIT_TIMEOUT_MS (48 h) later; it
      // stays scheduled after the audit is decided (it then finds nothing to do). Those are not open work.
      const [work] = await query<RowDataPacket>(dbPort, `SELECT COUNT(*) AS n FROM work_items WHERE status IN ('pending','in_flight') AND NOT (kind = '${AUDIT_WATCH}' AND next_attempt_at > ?)`, [Date.now() + 3_600_000]);
      const [outbox] = await query<RowDataPacket>(dbPort, 'SELECT COUNT(*) AS n FROM outbox_pending');
      const [audits] = await query<RowDataPacket>(dbPort, 'SELECT COUNT(*) AS n FROM orders WHERE refund_pending > 0');
      const undecided = [...lianhe.orders.values()].reduce((s, o) => s + [...o.refunds.values()].filter((r) => !r.outcome).length, 0);
      const state = `open work ${work!.n}, unpublished events ${outbox!.n}, orders awaiting audit ${audits!.n}, supplier refunds undecided ${undecided}`;
      if (state !== last) say(`settling: ${state}`);
      last = state;
      if (Number(work!.n) === 0 && Number(outbox!.n) === 0 && Number(audits!.n) === 0 && undecided === 0) return true;
    } catch (err) {
      say(`settling: database not answering (${(err as Error).message})`);
    }
    await sleep(2_000);
  }
  return false;
}

interface Report {
  issued: number;
  consumedUnits: number;
  refundedUnits: number;
  rejectedAudits: number;
  inboundTaobao: number;
  workRetries: number;
  auditWatches: number;
  topSendAlready: number;
  topConsumeDuplicate: number;
  outboxEvents: number;
  kafkaUnique: number;
  kafkaMessages: number;
  parked: number;
  parkedDetail: string;
  exceptionsDetail: string;
  eventTypes: string;
  lost: string[];
  doubled: string[];
  other: string[];
}

async function checkInvariants(dbPort: number, runs: OrderRun[], top: TopSimulator, lianhe: LianheSimulator, kafka: KafkaMockService): Promise<Report> {
  const lost: string[] = [];
  const doubled: string[] = [];
  const other: string[] = [];
  for (const r of runs) for (const a of r.anomalies) other.push(`order ${r.tid}: ${a}`);

  const orders = await query<RowDataPacket>(dbPort, 'SELECT id, taobao_order_id, state, purchased, available, consumed, refund_pending, refunded, expired FROM orders');
  const byTid = new Map<string, RowDataPacket[]>();
  for (const o of orders) byTid.set(String(o.taobao_order_id), [...(byTid.get(String(o.taobao_order_id)) ?? []), o]);
  const vouchers = await query<RowDataPacket>(dbPort, 'SELECT order_id, code FROM vouchers');
  const codesOf = new Map<string, string[]>();
  for (const v of vouchers) codesOf.set(String(v.order_id), [...(codesOf.get(String(v.order_id)) ?? []), String(v.code)]);

  let issued = 0;
  let consumedUnits = 0;
  let refundedUnits = 0;
  let rejectedAudits = 0;
  const transitional = new Set(['RECEIVED', 'ISSUING', 'REFUND_PENDING_AUDIT']);
  const undriven = runs.filter((r) => !r.started).length;
  if (undriven > 0) other.push(`${undriven} orders not driven within the run budget`);
  for (const run of runs) {
    if (!run.started) continue;
    const rows = byTid.get(run.tid) ?? [];
    if (rows.length === 0) {
      lost.push(`order ${run.tid}: acknowledged send notice but no order`);
      continue;
    }
    if (rows.length > 1) doubled.push(`order ${run.tid}: ${rows.length} orders for one Taobao order`);
    const o = rows[0]!;
    const ledger = { purchased: o.purchased, available: o.available, consumed: o.consumed, refundPending: o.refund_pending, refunded: o.refunded, expired: o.expired };
    try {
      assertLedger(ledger);
    } catch (e) {
      other.push(`order ${run.tid}: ledger ${(e as Error).message}`);
    }
    if (transitional.has(String(o.state))) other.push(`order ${run.tid}: still ${o.state}`);
    consumedUnits += o.consumed;
    refundedUnits += o.refunded;
    // The order did what the driver did to it.
    if (o.purchased !== UNITS) other.push(`order ${run.tid}: purchased ${o.purchased}`);
    if (o.consumed !== run.admitted) (o.consumed > run.admitted ? doubled : lost).push(`order ${run.tid}: consumed ${o.consumed}, gate admitted ${run.admitted}`);
    const wantRefunded = run.cancelled && run.plan.approve ? run.plan.cancel : 0;
    if (run.cancelled && !run.plan.approve) rejectedAudits++;
    if (o.refunded !== wantRefunded) (o.refunded > wantRefunded ? doubled : lost).push(`order ${run.tid}: refunded ${o.refunded}, expected ${wantRefunded}`);

    // Taobao (TOP simulator): codes sent exactly once and they are ours; consumed there = consumed here.
    const t = top.order(run.tid);
    if (t.sent) issued++;
    else lost.push(`order ${run.tid}: codes never reached Taobao (state ${o.state})`);
    const ours = (codesOf.get(String(o.id)) ?? []).sort().join(',');
    const theirs = t.codes.map((c) => c.code).sort().join(',');
    if (t.sent && ours !== theirs) other.push(`order ${run.tid}: codes at Taobao ${theirs} != ours ${ours}`);
    const topConsumed = t.serials.filter((s) => !s.reversed).reduce((s, x) => s + x.num, 0);
    if (topConsumed !== o.consumed) (topConsumed > o.consumed ? doubled : lost).push(`order ${run.tid}: Taobao consumed ${topConsumed}, ours ${o.consumed}`);
    const reversed = t.serials.filter((s) => s.reversed).length;
    if (reversed > 0) other.push(`order ${run.tid}: ${reversed} consume(s) reversed at Taobao`);

    // The supplier: one order there, with the same refunds.
    const s = lianhe.orders.get(String(o.id));
    if (!s) lost.push(`order ${run.tid}: no order at the supplier`);
    else {
      if (s.quantity !== UNITS) doubled.push(`order ${run.tid}: supplier quantity ${s.quantity}`);
      if (s.refunded !== o.refunded) other.push(`order ${run.tid}: supplier refunded ${s.refunded}, ours ${o.refunded}`);
      if (s.refunds.size > (run.cancelled ? 1 : 0)) doubled.push(`order ${run.tid}: ${s.refunds.size} refund requests at the supplier`);
    }
  }
  const driven = runs.length - undriven;
  if (orders.length !== driven) other.push(`${orders.length} orders in the database for ${driven} Taobao orders`);
  const ourIds = new Set(orders.map((o) => String(o.id)));
  for (const id of lianhe.orders.keys()) if (!ourIds.has(id)) doubled.push(`supplier order ${id} matches no order of ours`);
  const topSendAlready = top.callsOf('taobao.vmarket.eticket.send').length - issued;
  const topConsumeDuplicate = top.callsOf('taobao.vmarket.eticket.consume').length - consumedUnits;
  const resends = top.callsOf('taobao.vmarket.eticket.resend').length;
  if (resends > 0) other.push(`${resends} unexpected eticket.resend calls`);

  const [inbound] = await query<RowDataPacket>(dbPort, "SELECT COUNT(*) AS n FROM inbound_messages WHERE source = 'taobao'");
  const inboundTaobao = Number(inbound!.n);
  if (inboundTaobao !== counts.noticeUnique) other.push(`inbound_messages holds ${inboundTaobao} Taobao notices, ${counts.noticeUnique} unique were sent`);

  const [work] = await query<RowDataPacket>(dbPort, "SELECT COALESCE(SUM(attempts),0) - COUNT(*) AS retries FROM work_items WHERE status = 'done'");
  const openRows = await query<RowDataPacket>(dbPort, "SELECT kind, status, COUNT(*) AS n, MIN(next_attempt_at) AS next_at, MAX(attempts) AS attempts, MAX(last_error) AS err FROM work_items WHERE status IN ('pending','in_flight') GROUP BY kind, status");
  let auditWatches = 0;
  for (const r of openRows) {
    if (r.kind === AUDIT_WATCH && r.status === 'pending' && Number(r.next_at) > Date.now() + 3_600_000) {
      auditWatches += Number(r.n);
      continue;
    }
    other.push(`open work ${r.kind}/${r.status} x${r.n} (attempts up to ${r.attempts}, next in ${Math.round((Number(r.next_at) - Date.now()) / 1000)} s, ${String(r.err ?? '').slice(0, 120)})`);
  }
  const [watchedOpen] = await query<RowDataPacket>(dbPort, `SELECT COUNT(*) AS n FROM work_items w JOIN orders o ON o.id = w.order_id WHERE w.kind = '${AUDIT_WATCH}' AND w.status = 'pending' AND o.refund_pending > 0`);
  if (Number(watchedOpen!.n) > 0) other.push(`${watchedOpen!.n} audit watches on orders still awaiting an audit`);
  const parkedRows = await query<RowDataPacket>(dbPort, "SELECT kind, status, COUNT(*) AS n, MAX(last_error) AS err FROM work_items WHERE status IN ('parked','abandoned') GROUP BY kind, status");
  const parked = parkedRows.reduce((s, r) => s + Number(r.n), 0);
  const parkedDetail = parkedRows.map((r) => `${r.kind}/${r.status} x${r.n} (${String(r.err ?? '').slice(0, 120)})`).join(', ');
  if (parked > 0) other.push(`parked work: ${parkedDetail}`);
  const exceptions = await query<RowDataPacket>(dbPort, 'SELECT kind, COUNT(*) AS n FROM operator_exceptions GROUP BY kind');
  const exceptionsDetail = exceptions.map((e) => `${e.kind} x${e.n}`).join(', ');
  // Explained: each rejected audit raises one exception; anything else is a failure to look at.
  for (const e of exceptions) {
    if (String(e.kind).includes('reject') && Number(e.n) === rejectedAudits) continue;
    other.push(`operator exceptions ${e.kind} x${e.n}`);
  }

  // Kafka: every event of the table at least once; deduplicated by event id, exactly the table's events.
  const events = await query<RowDataPacket>(dbPort, "SELECT e.event_id, CASE WHEN p.id IS NULL THEN 'published' ELSE 'pending' END AS status FROM outbox_events e LEFT JOIN outbox_pending p ON p.id = e.id");
  const byType = await query<RowDataPacket>(dbPort, 'SELECT type, COUNT(*) AS n FROM outbox_events GROUP BY type ORDER BY type');
  const eventTypes = byType.map((r) => `${r.type} ${r.n}`).join(', ');
  // No resend happens in this run: exactly one code.sent per order (a second one is a result recorded twice).
  const sentTwice = await query<RowDataPacket>(dbPort, "SELECT order_id, COUNT(*) AS n FROM outbox_events WHERE type = 'code.sent' GROUP BY order_id HAVING COUNT(*) > 1");
  for (const r of sentTwice) doubled.push(`order ${r.order_id}: ${r.n} code.sent events`);
  const tableIds = new Set(events.map((e) => String(e.event_id)));
  const unpublished = events.filter((e) => e.status !== 'published').length;
  if (unpublished > 0) lost.push(`${unpublished} outbox events never published`);
  const { unique, messages } = await readTopic(kafka.brokers, `${TOPIC_PREFIX}order-events`, tableIds);
  for (const id of tableIds) if (!unique.has(id)) lost.push(`event ${id} not in Kafka`);
  for (const id of unique) if (!tableIds.has(id)) doubled.push(`event ${id} in Kafka but not in the outbox table`);

  return {
    issued,
    consumedUnits,
    refundedUnits,
    rejectedAudits,
    inboundTaobao,
    workRetries: Number(work!.retries),
    auditWatches,
    topSendAlready,
    topConsumeDuplicate,
    outboxEvents: tableIds.size,
    kafkaUnique: unique.size,
    kafkaMessages: messages,
    parked,
    parkedDetail,
    exceptionsDetail,
    eventTypes,
    lost,
    doubled,
    other,
  };
}

/** Reads the topic from the beginning until every expected event id was seen (or 60 s), counting all messages. */
async function readTopic(brokers: string, topic: string, expected: Set<string>): Promise<{ unique: Set<string>; messages: number }> {
  const kafka = new Kafka({ clientId: 'chaos-check', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `chaos-check-${Date.now()}`, sessionTimeout: 6_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 });
  const unique = new Set<string>();
  let messages = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        messages++;
        const id = message.headers?.['event-id'];
        if (id !== undefined) unique.add(Buffer.isBuffer(id) ? id.toString('utf8') : String(id));
      },
    });
    const deadline = Date.now() + 60_000;
    let quietSince = Date.now();
    let lastCount = -1;
    while (Date.now() < deadline) {
      if (messages !== lastCount) (lastCount = messages), (quietSince = Date.now());
      const all = [...expected].every((id) => unique.has(id));
      // Once everything expected arrived, read on until the topic is quiet so redeliveries are counted too.
      if (all && Date.now() - quietSince > 2_000) break;
      await sleep(250);
    }
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return { unique, messages };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
