/**
 * A REAL Gateway (Gateway.start, the composition root production runs) for the bad-input suites, on SQLite or on
 * MariaDB, with three supplier instances from a SUPPLIERS_FILE (zhiyoubao, lianhe, sandbox), one seeded order that
 * went all the way through (so hostile input can aim at something that exists), one provisioned gate device, and
 * the gateway's log output captured for the personal-data check.
 *
 * The oracle every door shares:
 *  - `snapshot()` reads every row of every table the gateway owns; `assertUnchanged` compares two of them, so
 *    "no state change" is checked on content, not only on counts;
 *  - `personalData` collects every mobile / ID-card number a test sent, and `assertNoPersonalDataInLogs` searches
 *    the captured log text for any of them in clear.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import fc from 'fast-check';
import { Gateway } from '../../src/app';
import { loadConfig } from '../../src/config';
import { CheckMethod as ProtoCheckMethod, GateAdminServiceClient, type ProvisionDeviceResponse } from '../../src/gen/ticketgateway/gates/v1/gates';
import { createLogger } from '../../src/observability/logger';
import type { DatabaseKind } from '../../src/persistence/database';
import { TAOBAO_NOTICE_PATH } from '../../src/taobao/notice-routes';
import { openTestDatabase, type TestDatabase } from '../support/database';
import { healthCheck, unary } from '../support/grpc-clients';
import { buildNotice, type BuildNoticeOptions } from '../support/taobao-notices';
import { newTaobaoOrderId, sendFields } from '../taobao/flows/flow-harness';

/** Runs per property: small in `npm test`, 10,000 in `npm run fuzz` / chaos. */
export const FUZZ_RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 150) || 150);
/** Seed for reproducing a failure: FUZZ_SEED=<seed printed by fast-check>. */
export const FUZZ_SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
export function fuzzParams(runs = FUZZ_RUNS): fc.Parameters<unknown> {
  return { numRuns: runs, seed: FUZZ_SEED, endOnFailure: true, includeErrorInReport: true };
}
/** Counterexamples print as their label (the bytes of a notice say little in a report). */
export function labelled<T extends { label: string }>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return arb.map((c) => Object.assign(c, { [fc.toStringMethod]: () => c.label }));
}

/**
 * A whole test file's time budget grows with the run count (10,000 runs take minutes): `properties` fuzz
 * properties at up to `msPerRun` each (a run reads every table twice; on MariaDB that is the slow part).
 */
export function fuzzTimeoutMs(properties: number, msPerRun = 80): number {
  return 60_000 + properties * FUZZ_RUNS * msPerRun;
}

export const FUZZ_NOTICE_KEY = 'fuzz-notice-key-0123456789abcdef';
export const PERSONAL_KEY = 'fuzz-personal-data-key-0123456789abcdef-xyz';
export const ZYB = { instance: 'zyb-fuzz', privateKey: 'zyb-fuzz-private-key' } as const;
export const LIANHE = { instance: 'lh-fuzz', apiName: 'fuzz-api', clientSecret: 'lh-fuzz-client-secret', partnerId: 1001 } as const;
export const SANDBOX = { instance: 'sbx-fuzz', callbackSecret: 'sbx-fuzz-callback-secret' } as const;
export const ITEM = { outerIid: 'FZ-ITEM', subOuterIid: 'FZ-SKU' } as const;
export const DEVICE = { code: 'fuzz-gate-1', spot: 'FZ-SPOT' } as const;

/** Every table the gateway owns; the snapshot reads them all. */
export type Snapshot = Map<string, { count: number; digest: string }>;

export interface FuzzGateway {
  readonly gateway: Gateway;
  readonly kind: DatabaseKind;
  readonly httpBase: string;
  readonly grpcTarget: string;
  /** The seeded order: ours, Taobao's, its voucher code and the buyer's mobile. */
  readonly seeded: { orderId: string; taobaoOrderId: string; token: string; voucherCode: string; mobile: string };
  readonly deviceSecret: string;
  readonly noticeKey: string;
  /** The seeded `send` notice again: byte for byte (no `now`), or re-stamped at `now` and re-signed. */
  seededReplay(now: number | undefined): Buffer;
  /** Every mobile / ID-card number sent so far (checked against the logs). */
  readonly personalData: Set<string>;
  logText(): string;
  snapshot(): Promise<Snapshot>;
  postNotice(body: Buffer | string, contentType?: string, method?: string): Promise<{ status: number; text: string }>;
  signedNotice(method: string, fields: Record<string, string>, opts?: BuildNoticeOptions): { body: Buffer; contentType: string };
  /** The gateway still answers: HTTP readiness and a gRPC health check. */
  assertAlive(): Promise<void>;
  stop(): Promise<void>;
}

export function assertUnchanged(before: Snapshot, after: Snapshot, what: string): void {
  const changed: string[] = [];
  for (const [table, b] of before) {
    const a = after.get(table);
    if (!a || a.digest !== b.digest) changed.push(`${table} (${b.count} -> ${a?.count ?? '?'} rows)`);
  }
  assert.deepEqual(changed, [], `${what}: state changed in ${changed.join(', ')}`);
}

/** Counts only: for doors whose expected answer may write a documented audit row. */
export function rowDelta(before: Snapshot, after: Snapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [table, b] of before) {
    const d = (after.get(table)?.count ?? 0) - b.count;
    if (d !== 0) out[table] = d;
  }
  return out;
}

// ---- personal data -------------------------------------------------------------------------------------

const ID_REGIONS = ['110101', '310104', '440305', '510107', '330106'];
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';

/** A mainland mobile number: 1[3-9] and nine digits. */
export const mobileArb = fc
  .tuple(fc.integer({ min: 3, max: 9 }), fc.integer({ min: 0, max: 999_999_999 }))
  .map(([second, rest]) => `1${second}${String(rest).padStart(9, '0')}`);

/** A structurally valid 18-character resident ID number (region, birth date, sequence, check digit). */
export const idCardArb = fc
  .tuple(fc.constantFrom(...ID_REGIONS), fc.date({ min: new Date('1940-01-01'), max: new Date('2010-12-31'), noInvalidDate: true }), fc.integer({ min: 0, max: 999 }))
  .map(([region, birth, seq]) => {
    const body = `${region}${birth.toISOString().slice(0, 10).replace(/-/g, '')}${String(seq).padStart(3, '0')}`;
    const sum = [...body].reduce((s, ch, i) => s + Number(ch) * ID_WEIGHTS[i]!, 0);
    return body + ID_CHECK[sum % 11]!;
  });

/** Some personal number, remembered so the log check can look for it. */
export function personalArb(fz: { personalData: Set<string> }): fc.Arbitrary<string> {
  return fc.oneof(mobileArb, idCardArb).map((v) => {
    fz.personalData.add(v);
    return v;
  });
}

export function assertNoPersonalDataInLogs(fz: FuzzGateway): void {
  const text = fz.logText();
  assert.ok(text.length > 0, 'the gateway logged nothing: the capture is not wired');
  const numbers = [...fz.personalData].filter((v) => /\d{6}/.test(v));
  const leaked = numbers.filter((v) => new RegExp(`(?<![0-9])${v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![0-9])`).test(text));
  assert.deepEqual(leaked.map((v) => v.slice(0, 3) + '…'), [], `personal numbers in clear in the gateway log (${leaked.length} of ${fz.personalData.size})`);
}

// ---- the gateway -------------------------------------------------------------------------------------------

const CATALOG = {
  products: [
    {
      outer_iid: ITEM.outerIid,
      sub_outer_iid: ITEM.subOuterIid,
      supplier: SANDBOX.instance,
      ticket_type: 'FZ-T1',
      scenic_spot: DEVICE.spot,
      check_methods: ['CODE', 'QR'],
      real_name_required: false,
      validity: { kind: 'days_from_visit', days: 1 },
      expiry_refund: { allowed: true, ratio_bp: 10_000 },
    },
  ],
};

async function httpFetch(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, text: await res.text() };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startFuzzGateway(kind: DatabaseKind): Promise<FuzzGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-fuzz-'));
  let tdb: TestDatabase | undefined;
  let gateway: Gateway | undefined;
  const chunks: string[] = [];
  // pino writes one JSON line per call to whatever has write(); the buffer is searched for personal data.
  const logger = createLogger('debug', { write: (s: string) => void chunks.push(s) });
  try {
    const suppliersFile = join(dir, 'suppliers.json');
    writeFileSync(
      suppliersFile,
      JSON.stringify({
        [ZYB.instance]: { type: 'zhiyoubao', endpoint: 'http://127.0.0.1:9/boss/service/code.htm', corpCode: 'fz-corp', userName: 'fz-user', privateKey: ZYB.privateKey },
        [LIANHE.instance]: { type: 'lianhe', baseUrl: 'http://127.0.0.1:9', partnerId: LIANHE.partnerId, apiName: LIANHE.apiName, clientSecret: LIANHE.clientSecret },
        [SANDBOX.instance]: { type: 'sandbox', callbackSecret: SANDBOX.callbackSecret },
      }),
    );
    const catalogFile = join(dir, 'catalog.json');
    writeFileSync(catalogFile, JSON.stringify(CATALOG));
    const env: Record<string, string> = {
      DATA_DIR: join(dir, 'data'),
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: 'debug',
      SUPPLIERS_FILE: suppliersFile,
      PRODUCT_CATALOG_FILE: catalogFile,
      TAOBAO_NOTICE_KEY: FUZZ_NOTICE_KEY,
      PERSONAL_DATA_KEY: PERSONAL_KEY,
      // The sweep would change state on its own timer; bad input is what is under test here.
      EXPIRY_SWEEP_INTERVAL_MS: String(24 * 3_600_000),
      SHUTDOWN_GRACE_MS: '2000',
    };
    if (kind === 'mysql') {
      tdb = await openTestDatabase('mysql');
      env.DATABASE_URL = tdb.url!;
    }
    gateway = await Gateway.start({ config: loadConfig(env), logger, defaultMetrics: false });
    const httpBase = `http://127.0.0.1:${gateway.httpPort}`;
    const grpcTarget = `127.0.0.1:${gateway.grpcPort}`;
    const db = gateway.db;
    const tables = db.dataSource.entityMetadatas.map((m) => m.tableName).sort();
    const quote = (t: string) => (db.kind === 'mysql' ? `\`${t}\`` : `"${t}"`);

    const snapshot = async (): Promise<Snapshot> => {
      const out: Snapshot = new Map();
      await db.read(async (em) => {
        for (const t of tables) {
          const rows = (await em.query(`SELECT * FROM ${quote(t)}`)) as unknown[];
          const lines = rows.map((r) => JSON.stringify(r)).sort();
          out.set(t, { count: rows.length, digest: createHash('sha256').update(lines.join('\n')).digest('hex') });
        }
      });
      return out;
    };

    const signedNotice = (method: string, fields: Record<string, string>, opts: BuildNoticeOptions = {}) => buildNotice(method, fields, FUZZ_NOTICE_KEY, opts);
    const postNotice = (body: Buffer | string, contentType = 'application/x-www-form-urlencoded', method = 'POST') =>
      httpFetch(`${httpBase}${TAOBAO_NOTICE_PATH}`, { method, headers: { 'content-type': contentType }, body: method === 'GET' || method === 'HEAD' ? undefined : body });

    // Seed: one genuine order through the real notice door, issued by the sandbox supplier and sent to Taobao.
    const taobaoOrderId = newTaobaoOrderId();
    const mobile = '13912345678';
    const fields = sendFields(taobaoOrderId, { outer_iid: ITEM.outerIid, sub_outer_iid: ITEM.subOuterIid, mobile });
    const seededNotice = signedNotice('send', fields);
    const ack = await postNotice(seededNotice.body, seededNotice.contentType);
    assert.equal(ack.text, '{"code":200}', `seed notice not acknowledged: ${ack.status} ${ack.text}`);
    const seededRow = await until('the seeded order to be issued and its work done', async () => {
      const rows = (await db.read((em) =>
        em.query(`SELECT o.id AS id, v.code AS code FROM ${quote('orders')} o JOIN ${quote('vouchers')} v ON v.order_id = o.id WHERE o.taobao_order_id = '${taobaoOrderId}'`),
      )) as Array<{ id: string; code: string }>;
      const open = (await db.read((em) => em.query(`SELECT COUNT(*) AS n FROM ${quote('work_items')} WHERE status IN ('pending', 'in_flight')`))) as Array<{ n: number | string }>;
      return rows[0] && Number(open[0]!.n) === 0 ? rows[0] : undefined;
    });

    const admin = new GateAdminServiceClient(grpcTarget, credentials.createInsecure());
    let provisioned: ProvisionDeviceResponse;
    try {
      provisioned = await unary(admin, 'provisionDevice', {
        deviceCode: DEVICE.code,
        supplierEnterpriseCode: 'FZ-ENT',
        scenicSpotCode: DEVICE.spot,
        allowedCheckMethods: [ProtoCheckMethod.CHECK_METHOD_CODE, ProtoCheckMethod.CHECK_METHOD_QR, ProtoCheckMethod.CHECK_METHOD_ID_CARD],
        posid: 'FZ-POS-1',
      });
    } finally {
      admin.close();
    }

    const started = gateway;
    const fz: FuzzGateway = {
      gateway: started,
      kind,
      httpBase,
      grpcTarget,
      seeded: { orderId: seededRow.id, taobaoOrderId, token: fields.token!, voucherCode: seededRow.code, mobile },
      deviceSecret: provisioned.deviceSecret,
      noticeKey: FUZZ_NOTICE_KEY,
      seededReplay: (now) => (now === undefined ? seededNotice.body : signedNotice('send', fields, { now }).body),
      personalData: new Set([mobile]),
      logText: () => chunks.join(''),
      snapshot,
      postNotice,
      signedNotice,
      async assertAlive() {
        const ready = await httpFetch(`${httpBase}/readyz`);
        assert.equal(ready.status, 200, `readyz answered ${ready.status}`);
        assert.equal(await healthCheck(started.grpcPort), 'SERVING');
      },
      async stop() {
        try {
          await started.stop();
        } finally {
          await tdb?.drop().catch(() => undefined);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
    return fz;
  } catch (err) {
    await gateway?.stop().catch(() => undefined);
    await tdb?.drop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
