/**
 * Lists the SQL statements ONE `send` notice and ONE Redeem send to MariaDB (the server's general log), for the
 * "where time goes" part of BENCHMARKS.md: on these machines each statement is a socket write + a round trip, and
 * the profile shows those writes as the largest single cost.  `npx tsx bench/trace-statements.ts`
 * The gateway runs in this process with its work runner and relay; their polling shows up as well, marked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { Gateway } from '../src/app';
import { configSchema } from '../src/config';
import { newLedger } from '../src/domain/ledger';
import { OrderState } from '../src/domain/model';
import { AdmissionServiceClient, CheckMethod, GateAdminServiceClient, type ProvisionDeviceResponse, type RedeemResponse } from '../src/gen/ticketgateway/gates/v1/gates';
import { createLogger } from '../src/observability/logger';
import { OrderRepository } from '../src/persistence/order-repository';
import { TAOBAO_NOTICE_PATH } from '../src/taobao/notice-routes';
import { unary } from '../test/support/grpc-clients';
import { startMariaDb } from '../test/support/services';
import { buildNotice } from '../test/support/taobao-notices';
import { ITEM, newTaobaoOrderId, sendFields } from '../test/taobao/flows/flow-harness';
import { keepAliveAgent, post } from './http-post';

const NOTICE_KEY = 'trace-notice-key-0123456789abcdef';

async function main(): Promise<void> {
  const mariadb = await startMariaDb();
  const work = mkdtempSync(join(tmpdir(), 'tg-trace-'));
  const admin = await createConnection({ uri: mariadb.url });
  let gateway: Gateway | undefined;
  try {
    await admin.query('CREATE DATABASE trace CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
    const catalog = join(work, 'catalog.json');
    writeFileSync(catalog, JSON.stringify({ products: [{ outer_iid: ITEM.outerIid, sub_outer_iid: ITEM.subOuterIid, supplier: 'sandbox', ticket_type: 'T', scenic_spot: 'TRACE', check_methods: ['CODE'], real_name_required: false, validity: { kind: 'days_from_visit', days: 1 }, expiry_refund: { allowed: true, ratio_bp: 10000 } }] }));
    const dbUrl = new URL('trace', mariadb.url).href;
    const config = configSchema.parse({ DATABASE_URL: dbUrl, PERSONAL_DATA_KEY: 'p'.repeat(40), DATA_DIR: work, GRPC_HOST: '127.0.0.1', GRPC_PORT: 0, HTTP_HOST: '127.0.0.1', HTTP_PORT: 0, TAOBAO_NOTICE_KEY: NOTICE_KEY, PRODUCT_CATALOG_FILE: catalog });
    gateway = await Gateway.start({ config, logger: createLogger('silent') });
    const agent = keepAliveAgent(1);
    const noticeUrl = new URL(TAOBAO_NOTICE_PATH, `http://127.0.0.1:${gateway.httpPort}`);
    const send = async () => {
      const n = buildNotice('send', sendFields(newTaobaoOrderId()), NOTICE_KEY);
      const a = await post(agent, noticeUrl, n.body, n.contentType);
      if (a.status !== 200) throw new Error(`notice answered ${a.status} ${a.body}`);
    };
    await send(); // warm caches (product directory, prepared metadata)
    await new Promise((r) => setTimeout(r, 1500));

    const target = `127.0.0.1:${gateway.grpcPort}`;
    const adminClient = new GateAdminServiceClient(target, credentials.createInsecure());
    const gate = new AdmissionServiceClient(target, credentials.createInsecure());
    const dev = await unary<object, ProvisionDeviceResponse>(adminClient, 'provisionDevice', { deviceCode: 'TRACE-1', supplierEnterpriseCode: 'E', scenicSpotCode: 'TRACE', allowedCheckMethods: [CheckMethod.CHECK_METHOD_CODE], posid: 'P1' });
    const md = new Metadata();
    md.set('x-device-code', 'TRACE-1');
    md.set('x-device-secret', dev.deviceSecret);
    const now = Date.now();
    await new OrderRepository(gateway.db).insert(
      { taobaoOrderId: '8000000000000001', token: 't', outerIid: ITEM.outerIid, subOuterIid: ITEM.subOuterIid, unitPriceFen: 100, totalFeeFen: 1000, noticeType: 0, validStart: now - 3_600_000, validEnd: now + 86_400_000, supplier: 'sandbox', state: OrderState.Issued, ledger: newLedger(10), createdAt: now },
      [{ code: 'TRACECODE', total: 10 }],
    );
    const redeem = (nonce: string) => unary<object, RedeemResponse>(gate, 'redeem', { presented: { voucherCode: 'TRACECODE', orderId: '' }, count: 1, clientNonce: nonce }, md);
    await redeem('warm');
    await new Promise((r) => setTimeout(r, 1500));

    await admin.query(`SET GLOBAL log_output = 'TABLE'`);
    for (const [label, action] of [['one send notice (ack path; its work runs after)', send], ['one Redeem', () => redeem('traced')]] as const) {
      await admin.query('TRUNCATE mysql.general_log');
      await admin.query('SET GLOBAL general_log = 1');
      const t0 = Date.now();
      await action();
      const ackMs = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1200)); // let the background work it caused run
      await admin.query('SET GLOBAL general_log = 0');
      const [rows] = await admin.query(`SELECT event_time, thread_id, CONVERT(argument USING utf8mb4) AS sql_text FROM mysql.general_log WHERE command_type IN ('Query', 'Execute') ORDER BY event_time`);
      const list = (rows as Array<{ thread_id: number; sql_text: string }>).filter((r) => !/general_log|SHOW GLOBAL/.test(r.sql_text));
      process.stdout.write(`\n== ${label}: answered in ${ackMs} ms; ${list.length} statements in the next ~1.2 s\n`);
      for (const r of list) process.stdout.write(`  [t${r.thread_id}] ${r.sql_text.replace(/\s+/g, ' ').slice(0, 150)}\n`);
    }
    agent.destroy();
    adminClient.close();
    gate.close();
  } finally {
    await gateway?.stop().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await mariadb.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`trace failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
