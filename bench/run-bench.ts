/**
 * `npm run bench`: figures and ratios measured side by side in ONE run, printed as one table with the machine.
 * Never pass/fail on timings: targets are printed next to the figures, and the exit code only says whether the
 * bench itself ran. Starts its own throwaway MariaDB and Kafka mock broker; everything runs on 127.0.0.1.
 *
 *   1. notices     signed `send` notices, 16 senders, gateway vs the same rows inserted directly (raw ceiling)
 *   2. admissions  Redeem at c=32 and at 500/s open loop, vs a trivial grpc-js echo measured the same way
 *   3. relay       outbox -> Kafka drain vs raw kafkajs batches; created->acked lag at 1,000 events/s
 *   4. end to end  `send` notice -> `eticket.send` at the TOP simulator; peak RSS of the gateway process
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { RecordableHistogram } from 'node:perf_hooks';
import { createConnection } from 'mysql2/promise';
import { startKafkaMock, startMariaDb, type KafkaMockService, type MariaDbService } from '../test/support/services';
import { TopSimulator } from '../test/support/top-simulator';
import { ITEM } from '../test/taobao/flows/flow-harness';
import { openDatabase } from '../src/persistence/database';
import { TAOBAO_NOTICE_PATH } from '../src/taobao/notice-routes';
import { benchAdmissions, BENCH_SCENIC_SPOT, OPEN_LOOP_RATE, REDEEM_CONCURRENCY } from './admissions-bench';
import { buildGateway } from './build-gateway';
import { startChild, type ChildService } from './child-process';
import { benchEndToEnd, E2E_RATE } from './end-to-end-bench';
import { percentileMs, type LoadResult } from './load';
import { benchNotices, NOTICE_SENDERS } from './notices-bench';
import { benchRelay, LAG_RATE } from './relay-bench';
import type { RuntimeWindow } from './runtime-figures';

const NOTICE_KEY = 'bench-notice-key-0123456789abcdef';
const PERSONAL_DATA_KEY = 'bench-personal-data-key-0123456789abcdef';
const TOP_IDENTITY = { appKey: '23456789', appSecret: 'bench-top-secret', session: 'sess-bench', codemerchantId: '1000123' };
/** Pool big enough that 32 concurrent Redeems do not queue for a connection; the raw ceiling uses 16 for 16 senders. */
const GATEWAY_POOL_SIZE = '32';
/** The whole run is bounded: a stuck section fails the bench instead of hanging it. */
const RUN_TIMEOUT_MS = 10 * 60_000;

interface TableRow {
  readonly section: string;
  readonly figure: string;
  readonly gateway: string;
  readonly baseline: string;
  readonly ratio: string;
  readonly target: string;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');
const ms = (h: RecordableHistogram, p: number) => `${fmt(percentileMs(h, p), 1)} ms`;
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${fmt(a / b, 2)}x` : 'n/a');
const mb = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : `${fmt(bytes / 1024 / 1024)} MB`);
/** e.g. `gateway 0.84 + MariaDB 0.61 + load generator 0.30 = 1.75`: cores busy on average over the window. */
const cores = (w: RuntimeWindow, names: readonly string[]) => {
  const each = names.map((n) => [n, w.cpuCores[n]] as const);
  const total = each.every(([, c]) => c !== undefined) ? ` = ${fmt(each.reduce((sum, [, c]) => sum + c!, 0), 2)}` : '';
  return each.map(([n, c]) => `${n} ${c === undefined ? 'n/a' : fmt(c, 2)}`).join(' + ') + total;
};
const gcPauses = (w: RuntimeWindow) =>
  `${w.majorGcs.count} full (${fmt(w.majorGcs.totalMs)} ms), ${w.minorGcs.count} young (${fmt(w.minorGcs.totalMs)} ms)`;
const failures = (r: LoadResult) => (r.failed + r.dropped > 0 ? ` (${r.failed} failed${r.dropped ? `, ${r.dropped} dropped` : ''})` : '');

async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const conn = await createConnection({ uri: serverUrl });
  try {
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await conn.end();
  }
  return new URL(name, serverUrl).href;
}

function gatewayEnv(o: { dbUrl: string; brokers: string; dataDir: string; catalogFile: string; topicPrefix: string; topUrl?: string }): Record<string, string> {
  return {
    DATABASE_URL: o.dbUrl,
    DATABASE_POOL_SIZE: GATEWAY_POOL_SIZE,
    PERSONAL_DATA_KEY,
    DATA_DIR: o.dataDir,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    LOG_LEVEL: 'info', // as production runs; the bench reads and drops the lines
    KAFKA_BROKERS: o.brokers,
    KAFKA_TOPIC_PREFIX: o.topicPrefix,
    TAOBAO_NOTICE_KEY: NOTICE_KEY,
    PRODUCT_CATALOG_FILE: o.catalogFile,
    // Empty means unset (config.ts): nothing from the caller's environment leaks in.
    SUPPLIERS_FILE: '',
    CONFIG_FILE: '',
    TAOBAO_TOP_URL: o.topUrl ?? '',
    TAOBAO_APP_KEY: o.topUrl ? TOP_IDENTITY.appKey : '',
    TAOBAO_APP_SECRET: o.topUrl ? TOP_IDENTITY.appSecret : '',
    TAOBAO_SESSION: o.topUrl ? TOP_IDENTITY.session : '',
    TAOBAO_CODEMERCHANT_ID: o.topUrl ? TOP_IDENTITY.codemerchantId : '',
    TAOBAO_SIGN_METHOD: 'hmac',
  };
}

/** `npm run bench -- 2 4` runs only those sections (for working on one); the default is all four. */
const only = new Set(process.argv.slice(2).filter((a) => /^[1-4]$/.test(a)));
const runs = (section: number) => only.size === 0 || only.has(String(section));
/** BENCH_LOG_DIR=dir keeps the children's logs there; by default they go to the run's temp dir and are removed. */
const logFile = (ctx: { work: string }, name: string) => join(process.env.BENCH_LOG_DIR ?? ctx.work, name);

const isGatewayStarted = (line: Record<string, unknown>) => line['msg'] === 'ticket-gateway started' && typeof line['httpPort'] === 'number';

interface BenchContext {
  readonly work: string;
  /** The compiled gateway and echo server. */
  readonly build: { readonly main: string; readonly echo: string };
  readonly catalogFile: string;
  readonly brokers: string;
  readonly dbs: Readonly<Record<'gateway' | 'raw' | 'relay' | 'e2e', string>>;
  readonly children: ChildService[];
  /** The MariaDB server's process, whose CPU section 2 reports. */
  readonly mariadbPid: number;
  readonly top: TopSimulator;
  readonly rows: TableRow[];
  log(msg: string): void;
}

/** Sections 1 + 2 share one gateway process (its TOP calls go to the built-in sandbox) and the echo server. */
async function noticesAndAdmissions(ctx: BenchContext): Promise<void> {
  ctx.log('starting gateway A (sections 1-2) and the echo server');
  const [gatewayA, echo] = await Promise.all([
    startChild(ctx.build.main, gatewayEnv({ dbUrl: ctx.dbs.gateway, brokers: ctx.brokers, dataDir: join(ctx.work, 'a'), catalogFile: ctx.catalogFile, topicPrefix: 'bench-a.' }), isGatewayStarted, logFile(ctx, 'gateway-a.log')),
    startChild(ctx.build.echo, {}, (l) => typeof l['echoPort'] === 'number', logFile(ctx, 'echo.log')),
  ]);
  ctx.children.push(gatewayA, echo);

  if (runs(1)) {
    ctx.log(`1/4 notices: ${NOTICE_SENDERS} senders, gateway then raw mysql2 ceiling`);
    // The raw ceiling needs the gateway's schema: migrate its database the way the gateway does.
    await migrate(ctx.dbs.raw, join(ctx.work, 'raw'));
    const noticeUrl = new URL(TAOBAO_NOTICE_PATH, `http://127.0.0.1:${gatewayA.ready['httpPort'] as number}`);
    const n = await benchNotices({ noticeUrl, noticeKey: NOTICE_KEY, gatewayDbUrl: ctx.dbs.gateway, rawDbUrl: ctx.dbs.raw });
    reportErrors(ctx, { 'notices (gateway)': n.gateway, 'notices (raw)': n.raw });
    ctx.rows.push(
      { section: '1 notices', figure: `acknowledged/s (c=${NOTICE_SENDERS})`, gateway: fmt(n.gateway.perSecond) + failures(n.gateway), baseline: `${fmt(n.raw.perSecond)} raw tx/s${failures(n.raw)}`, ratio: ratio(n.gateway.perSecond, n.raw.perSecond), target: '>= 0.5x' },
      { section: '1 notices', figure: 'ack p50', gateway: ms(n.gateway.latency, 50), baseline: ms(n.raw.latency, 50), ratio: '', target: '' },
      { section: '1 notices', figure: 'ack p99', gateway: ms(n.gateway.latency, 99), baseline: ms(n.raw.latency, 99), ratio: '', target: '<= 50 ms' },
      { section: '1 notices', figure: 'SQL statements per notice', gateway: fmt(n.gatewayStatementsPerOp, 1), baseline: fmt(n.rawStatementsPerOp, 1), ratio: '', target: '' },
    );
  }

  if (runs(2)) {
    ctx.log(`2/4 admissions: Redeem vs echo, c=${REDEEM_CONCURRENCY} then ${OPEN_LOOP_RATE}/s open loop`);
    const a = await benchAdmissions({
      grpcPort: gatewayA.ready['grpcPort'] as number,
      echoPort: echo.ready['echoPort'] as number,
      gatewayDbUrl: ctx.dbs.gateway,
      gatewayHttpPort: gatewayA.ready['httpPort'] as number,
      pids: { gateway: gatewayA.pid, MariaDB: ctx.mariadbPid, echo: echo.pid, 'load generator': process.pid },
    });
    reportErrors(ctx, { 'redeem c=32': a.redeemClosed, 'echo c=32': a.echoClosed, 'redeem open loop': a.redeemOpen, 'echo open loop': a.echoOpen });
    ctx.rows.push(
      { section: '2 admissions', figure: `Redeem/s (c=${REDEEM_CONCURRENCY})`, gateway: fmt(a.redeemClosed.perSecond) + failures(a.redeemClosed), baseline: `${fmt(a.echoClosed.perSecond)} echo/s${failures(a.echoClosed)}`, ratio: ratio(a.redeemClosed.perSecond, a.echoClosed.perSecond), target: '>= 0.5x' },
      { section: '2 admissions', figure: `p50 / p99 (c=${REDEEM_CONCURRENCY})`, gateway: `${ms(a.redeemClosed.latency, 50)} / ${ms(a.redeemClosed.latency, 99)}`, baseline: `${ms(a.echoClosed.latency, 50)} / ${ms(a.echoClosed.latency, 99)}`, ratio: '', target: '' },
      { section: '2 admissions', figure: 'SQL statements per Redeem', gateway: fmt(a.statementsPerRedeem, 1), baseline: '', ratio: '', target: '' },
      { section: '2 admissions', figure: `p50 at ${OPEN_LOOP_RATE}/s open loop`, gateway: ms(a.redeemOpen.latency, 50) + failures(a.redeemOpen), baseline: ms(a.echoOpen.latency, 50) + failures(a.echoOpen), ratio: '', target: '' },
      { section: '2 admissions', figure: `p99 at ${OPEN_LOOP_RATE}/s open loop`, gateway: ms(a.redeemOpen.latency, 99), baseline: ms(a.echoOpen.latency, 99), ratio: '', target: '<= 25 ms' },
      // What explains the latencies: how busy the machine's cores were, and the gateway's own stalls.
      { section: '2 admissions', figure: `CPU, cores (c=${REDEEM_CONCURRENCY})`, gateway: cores(a.redeemClosedRuntime, ['gateway', 'MariaDB', 'load generator']), baseline: cores(a.echoClosedRuntime, ['echo', 'load generator']), ratio: '', target: '' },
      { section: '2 admissions', figure: `CPU, cores (${OPEN_LOOP_RATE}/s)`, gateway: cores(a.redeemOpenRuntime, ['gateway', 'MariaDB', 'load generator']), baseline: '', ratio: '', target: '' },
      { section: '2 admissions', figure: `loop delay p99 / max (${OPEN_LOOP_RATE}/s)`, gateway: `${fmt(a.redeemOpenRuntime.loopDelayP99Ms, 1)} ms / ${fmt(a.redeemOpenRuntime.loopDelayMaxMs, 1)} ms`, baseline: '', ratio: '', target: '' },
      { section: '2 admissions', figure: `GC pauses (${OPEN_LOOP_RATE}/s)`, gateway: gcPauses(a.redeemOpenRuntime), baseline: '', ratio: '', target: '' },
    );
  }
  ctx.rows.push({ section: '1-2', figure: 'peak RSS of gateway A (VmHWM)', gateway: mb(gatewayA.peakRssBytes()), baseline: `${mb(echo.peakRssBytes())} echo`, ratio: '', target: '' });
  await Promise.all([gatewayA.stop(), echo.stop()]);
}

async function relay(ctx: BenchContext): Promise<void> {
  ctx.log('3/4 relay: outbox drain vs raw kafkajs, then lag at a steady append rate');
  const r = await benchRelay({ dbUrl: ctx.dbs.relay, brokers: ctx.brokers.split(',') });
  ctx.rows.push(
    { section: '3 relay', figure: `events/s draining ${fmt(r.events)} rows`, gateway: fmt(r.relayPerSecond), baseline: `${fmt(r.rawPerSecond)} raw msg/s`, ratio: ratio(r.relayPerSecond, r.rawPerSecond), target: '>= 0.8x' },
    { section: '3 relay', figure: `created->acked lag at ${fmt(LAG_RATE)}/s, p50 / p99`, gateway: `${ms(r.lag, 50)} / ${ms(r.lag, 99)}`, baseline: `${fmt(r.lagPublished)}/${fmt(r.lagAppended)} published`, ratio: '', target: 'p99 <= 200 ms' },
  );
}

async function endToEnd(ctx: BenchContext): Promise<void> {
  ctx.log('4/4 end to end: send notice -> eticket.send at the TOP simulator');
  await ctx.top.start();
  const gatewayB = await startChild(
    ctx.build.main,
    gatewayEnv({ dbUrl: ctx.dbs.e2e, brokers: ctx.brokers, dataDir: join(ctx.work, 'b'), catalogFile: ctx.catalogFile, topicPrefix: 'bench-b.', topUrl: ctx.top.url }),
    isGatewayStarted,
    logFile(ctx, 'gateway-b.log'),
  );
  ctx.children.push(gatewayB);
  const e = await benchEndToEnd({ noticeUrl: new URL(TAOBAO_NOTICE_PATH, `http://127.0.0.1:${gatewayB.ready['httpPort'] as number}`), noticeKey: NOTICE_KEY, top: ctx.top });
  reportErrors(ctx, { 'end-to-end notices': e.notices });
  ctx.rows.push(
    { section: '4 end to end', figure: `notice -> eticket.send p50 / p99 (${E2E_RATE}/s)`, gateway: `${ms(e.latency, 50)} / ${ms(e.latency, 99)}`, baseline: `${e.arrived}/${e.sent} arrived${failures(e.notices)}`, ratio: '', target: 'p99 <= 1 s' },
    { section: '4 end to end', figure: 'peak RSS of gateway B (VmHWM)', gateway: mb(gatewayB.peakRssBytes()), baseline: '', ratio: '', target: '<= 200 MB' },
  );
  await gatewayB.stop();
}

function reportErrors(ctx: BenchContext, results: Record<string, LoadResult>): void {
  for (const [name, r] of Object.entries(results)) {
    if (r.firstError) ctx.log(`${name}: ${r.failed} failed, first error: ${r.firstError}`);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadBefore = loadavg();
  const work = mkdtempSync(join(tmpdir(), 'tg-bench-'));
  const catalogFile = join(work, 'catalog.yaml');
  writeFileSync(
    catalogFile,
    [
      'products:',
      `  - outer_iid: ${ITEM.outerIid}`,
      `    sub_outer_iid: ${ITEM.subOuterIid}`,
      '    supplier: sandbox',
      `    ticket_type: ${ITEM.ticketType}`,
      `    scenic_spot: ${BENCH_SCENIC_SPOT}`,
      '    check_methods: [CODE]',
      '    real_name_required: false',
      '    validity: { kind: days_from_visit, days: 1 }',
      '    expiry_refund: { allowed: true, ratio_bp: 10000 }',
      '',
    ].join('\n'),
  );
  let mariadb: MariaDbService | undefined;
  let kafka: KafkaMockService | undefined;
  const children: ChildService[] = [];
  const top = new TopSimulator(TOP_IDENTITY);
  const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${msg}\n`);
  try {
    log('compiling the gateway (as `npm start` runs it), starting MariaDB and the Kafka mock broker');
    const compiling = buildGateway(join(work, 'build'));
    [mariadb, kafka] = await Promise.all([startMariaDb(), startKafkaMock()]);
    const build = await compiling;
    if (build.diagnostics) log(`tsc reported ${build.diagnostics.split('\n').filter((l) => / error TS/.test(l)).length} error(s) in the checkout; compiled anyway`);
    const server = mariadb.url;
    const [gateway, raw, relayDb, e2e] = await Promise.all(['bench_gateway', 'bench_raw', 'bench_relay', 'bench_e2e'].map((n) => createDatabase(server, n)));
    const ctx: BenchContext = { work, build, catalogFile, brokers: kafka.brokers, dbs: { gateway: gateway!, raw: raw!, relay: relayDb!, e2e: e2e! }, children, mariadbPid: mariadb.pid, top, rows: [], log };
    if (runs(1) || runs(2)) await noticesAndAdmissions(ctx);
    if (runs(3)) await relay(ctx);
    if (runs(4)) await endToEnd(ctx);
    printReport(ctx.rows, { mariadbVersion: mariadb.version, elapsedMs: Date.now() - started, loadBefore, loadAfter: loadavg() });
  } finally {
    await Promise.allSettled(children.map((c) => c.stop()));
    await top.stop().catch(() => undefined);
    await Promise.allSettled([mariadb?.stop(), kafka?.stop()]);
    rmSync(work, { recursive: true, force: true });
  }
}

async function migrate(dbUrl: string, dataDir: string): Promise<void> {
  const db = await openDatabase({ url: dbUrl, dataDir, poolSize: 1 });
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
}

function printReport(rows: readonly TableRow[], run: { mariadbVersion: string; elapsedMs: number; loadBefore: number[]; loadAfter: number[] }): void {
  const cpuList = cpus();
  const out: string[] = [];
  out.push(`Machine: ${cpuList[0]?.model.trim() ?? 'unknown cpu'}, ${cpuList.length} cores, ${fmt(totalmem() / 1024 ** 3, 1)} GiB RAM, Linux ${release()}, Node ${process.version}, MariaDB ${run.mariadbVersion}, Kafka: librdkafka mock (kcat)`);
  // Other work on the machine skews every figure: the load average shows whether the run had the cores to itself.
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  out.push(`Run: ${new Date().toISOString()}, ${fmt(run.elapsedMs / 1000)} s; load average before ${load(run.loadBefore)}, after ${load(run.loadAfter)}`);
  out.push('');
  const header: TableRow = { section: 'section', figure: 'figure', gateway: 'gateway', baseline: 'baseline (same run)', ratio: 'ratio', target: 'target' };
  const keys = Object.keys(header) as Array<keyof TableRow>;
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...[header, ...rows].map((r) => r[k].length))])) as Record<keyof TableRow, number>;
  const line = (r: TableRow) => `| ${keys.map((k) => r[k].padEnd(width[k])).join(' | ')} |`;
  out.push(line(header));
  out.push(`|${keys.map((k) => '-'.repeat(width[k] + 2)).join('|')}|`);
  for (const r of rows) out.push(line(r));
  process.stdout.write(out.join('\n') + '\n');
}

const timer = setTimeout(() => {
  process.stderr.write(`bench: not finished within ${RUN_TIMEOUT_MS / 60_000} min, giving up\n`);
  process.exit(2);
}, RUN_TIMEOUT_MS);
timer.unref();

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
