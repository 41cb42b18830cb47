/**
 * Section 2, admissions: Redeem against the gateway (child process, MariaDB) beside a trivial grpc-js echo server
 * (its own child process) carrying the same RedeemRequest, both measured the same way in the same run: a closed
 * loop at 32 concurrent callers, then an open loop at a fixed rate with latency from the scheduled send time.
 * Devices are provisioned through the real admin RPC; issued orders with many units are stored through the
 * order repository, spread over enough codes that concurrent redeems rarely queue on one order's row lock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, type Client } from '@grpc/grpc-js';
import { newLedger } from '../src/domain/ledger';
import { OrderState } from '../src/domain/model';
import {
  AdmissionResult,
  AdmissionServiceClient,
  CheckMethod,
  GateAdminServiceClient,
  type ProvisionDeviceRequest,
  type ProvisionDeviceResponse,
  type RedeemRequest,
  type RedeemResponse,
} from '../src/gen/ticketgateway/gates/v1/gates';
import { openDatabase } from '../src/persistence/database';
import { OrderRepository } from '../src/persistence/order-repository';
import { unary } from '../test/support/grpc-clients';
import { ITEM } from '../test/taobao/flows/flow-harness';
import { EchoClient } from './echo-service';
import { countStatements, waitForIdleWork } from './db-counters';
import { closedLoop, openLoop, type LoadResult } from './load';
import { measureRuntime, type RuntimeWindow } from './runtime-figures';

export const REDEEM_CONCURRENCY = 32;
export const OPEN_LOOP_RATE = 500;
export const BENCH_SCENIC_SPOT = 'BENCH-SPOT';
const DEVICES = 8;
const ORDERS = 256;
const UNITS_PER_ORDER = 200;
const CLOSED_MAX_REQUESTS = 20_000;
const CLOSED_MAX_MS = 5_000;
const OPEN_MS = 6_000;
const WARM_UP = 300;
const IDLE_WAIT_MS = 30_000;

export interface AdmissionFigures {
  readonly echoClosed: LoadResult;
  readonly redeemClosed: LoadResult;
  readonly echoOpen: LoadResult;
  readonly redeemOpen: LoadResult;
  /** Statements MariaDB ran per admitted Redeem in the closed loop (its consume work and background polling included). */
  readonly statementsPerRedeem: number;
  /** CPU of the processes during the Redeem closed loop, and the gateway's runtime during the Redeem open loop. */
  readonly redeemClosedRuntime: RuntimeWindow;
  readonly redeemOpenRuntime: RuntimeWindow;
  /** CPU of the processes during the echo closed loop. */
  readonly echoClosedRuntime: RuntimeWindow;
}

export interface AdmissionsBenchTarget {
  readonly grpcPort: number;
  readonly echoPort: number;
  readonly gatewayDbUrl: string;
  /** The gateway's HTTP port (its /metrics) and the pids of the processes whose CPU is reported. */
  readonly gatewayHttpPort: number;
  readonly pids: Readonly<Record<string, number>>;
}

export async function benchAdmissions(opts: AdmissionsBenchTarget): Promise<AdmissionFigures> {
  const runtime = { gatewayHttpPort: opts.gatewayHttpPort, pids: opts.pids };
  const target = `127.0.0.1:${opts.grpcPort}`;
  const admin = new GateAdminServiceClient(target, credentials.createInsecure());
  const gate = new AdmissionServiceClient(target, credentials.createInsecure());
  const echo = new EchoClient(`127.0.0.1:${opts.echoPort}`, credentials.createInsecure());
  const clients: Client[] = [admin, gate, echo];
  try {
    const devices = await provisionDevices(admin);
    const codes = await storeIssuedOrders(opts.gatewayDbUrl);
    let nonce = 0;
    const requestFor = (i: number): { req: RedeemRequest; md: Metadata } => {
      const device = devices[i % devices.length]!;
      return {
        req: { presented: { voucherCode: codes[i % codes.length]!, orderId: '' }, count: 1, clientNonce: `bench-${++nonce}` },
        md: device,
      };
    };
    const redeem = async (i: number) => {
      const { req, md } = requestFor(i);
      const res = await unary<RedeemRequest, RedeemResponse>(gate, 'redeem', req, md);
      if (res.outcome?.result !== AdmissionResult.ADMISSION_RESULT_ADMITTED) {
        throw new Error(`redeem not admitted: ${AdmissionResult[res.outcome?.result ?? 0]} ${res.outcome?.message ?? ''}`);
      }
    };
    const echoOnce = async (i: number) => {
      const { req } = requestFor(i);
      const res = await unary<RedeemRequest, RedeemRequest>(echo, 'echo', req);
      if (res.clientNonce !== req.clientNonce) throw new Error('echo answered another message');
    };

    for (const [name, send] of [['echo', echoOnce], ['redeem', redeem]] as const) {
      const warm = await closedLoop({ concurrency: 8, maxRequests: WARM_UP, maxMs: 30_000, send });
      if (warm.failed > 0) throw new Error(`${name} warm-up failed: ${warm.firstError}`);
    }
    // Whatever the previous section left (issuing orders) drains first; it is not the Redeem's cost.
    await waitForIdleWork(opts.gatewayDbUrl, IDLE_WAIT_MS);
    const echoClosed = await measureRuntime(runtime, () => closedLoop({ concurrency: REDEEM_CONCURRENCY, maxRequests: CLOSED_MAX_REQUESTS, maxMs: CLOSED_MAX_MS, send: echoOnce }));
    // The /metrics scrapes stay outside the statement count (the gateway's scrape-time gauges query the database).
    const closed = await measureRuntime(runtime, () =>
      countStatements(opts.gatewayDbUrl, () => closedLoop({ concurrency: REDEEM_CONCURRENCY, maxRequests: CLOSED_MAX_REQUESTS, maxMs: CLOSED_MAX_MS, send: redeem })),
    );
    const redeemClosed = closed.result.result;
    await waitForIdleWork(opts.gatewayDbUrl, IDLE_WAIT_MS);
    const echoOpen = await openLoop({ ratePerSecond: OPEN_LOOP_RATE, durationMs: OPEN_MS, maxInFlight: 2_000, send: echoOnce });
    const redeemOpen = await measureRuntime(runtime, () => openLoop({ ratePerSecond: OPEN_LOOP_RATE, durationMs: OPEN_MS, maxInFlight: 2_000, send: redeem }));
    return {
      echoClosed: echoClosed.result,
      redeemClosed,
      echoOpen,
      redeemOpen: redeemOpen.result,
      statementsPerRedeem: closed.result.statements / redeemClosed.ok,
      echoClosedRuntime: echoClosed.window,
      redeemClosedRuntime: closed.window,
      redeemOpenRuntime: redeemOpen.window,
    };
  } finally {
    for (const c of clients) c.close();
  }
}

/** Gate devices of the bench's scenic spot, through GateAdminService.ProvisionDevice; returns each one's auth metadata. */
async function provisionDevices(admin: Client): Promise<Metadata[]> {
  const out: Metadata[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const deviceCode = `BENCH-GATE-${i}-${Date.now() % 100_000}`;
    const res = await unary<ProvisionDeviceRequest, ProvisionDeviceResponse>(admin, 'provisionDevice', {
      deviceCode,
      supplierEnterpriseCode: 'BENCH-ENT',
      scenicSpotCode: BENCH_SCENIC_SPOT,
      allowedCheckMethods: [CheckMethod.CHECK_METHOD_CODE],
      posid: `POS_${i}`,
    });
    const md = new Metadata();
    md.set('x-device-code', deviceCode);
    md.set('x-device-secret', res.deviceSecret);
    out.push(md);
  }
  return out;
}

/** Issued orders of the bench product, one multi-use code each; returns the codes. */
async function storeIssuedOrders(dbUrl: string): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-bench-orders-'));
  const db = await openDatabase({ url: dbUrl, dataDir, poolSize: 8 });
  try {
    const orders = new OrderRepository(db);
    const now = Date.now();
    const tag = now.toString(36).toUpperCase();
    const codes = Array.from({ length: ORDERS }, (_, i) => `BENCH${tag}${String(i).padStart(4, '0')}`);
    let next = 0;
    const insertOne = async () => {
      while (next < ORDERS) {
        const i = next++;
        await orders.insert(
          {
            taobaoOrderId: `8${String(now).slice(-9)}${String(i).padStart(6, '0')}`,
            token: `benchtok${i}`,
            outerIid: ITEM.outerIid,
            subOuterIid: ITEM.subOuterIid,
            itemTitle: '黄山风景区门票',
            unitPriceFen: 19_000,
            totalFeeFen: 19_000 * UNITS_PER_ORDER,
            noticeType: 0,
            validStart: now - 3_600_000,
            validEnd: now + 24 * 3_600_000,
            supplier: 'sandbox',
            supplierOrderId: `SBX-BENCH-${i}`,
            state: OrderState.Issued,
            ledger: newLedger(UNITS_PER_ORDER),
            createdAt: now,
          },
          [{ code: codes[i]!, total: UNITS_PER_ORDER }],
        );
      }
    };
    await Promise.all(Array.from({ length: 8 }, insertOne));
    return codes;
  } finally {
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
