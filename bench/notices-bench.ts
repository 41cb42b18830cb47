/**
 * Section 1, notices: signed GBK `send` notices POSTed by 16 concurrent senders to the gateway (child process, on
 * MariaDB), beside the raw ceiling: the same three rows a notice commits (inbound message, order, work item),
 * inserted with mysql2 in one transaction each by 16 concurrent clients, against the same server in the same run.
 */
import { randomBytes } from 'node:crypto';
import { createConnection, createPool, type RowDataPacket } from 'mysql2/promise';
import { OrderState } from '../src/domain/model';
import { NOTICE_ACK } from '../src/taobao/notice-parser';
import { buildNotice, type BuiltNotice } from '../test/support/taobao-notices';
import { newTaobaoOrderId, sendFields } from '../test/taobao/flows/flow-harness';
import { keepAliveAgent, post } from './http-post';
import { countStatements, waitForIdleWork } from './db-counters';
import { closedLoop, type LoadResult } from './load';

export const NOTICE_SENDERS = 16;
const MAX_NOTICES = 4_000;
const MAX_MS = 8_000;
const WARM_UP = 40;
const IDLE_WAIT_MS = 20_000;

export interface NoticeFigures {
  readonly gateway: LoadResult;
  readonly raw: LoadResult;
  /** Statements MariaDB ran per acknowledged notice / per raw transaction (the gateway's background work included). */
  readonly gatewayStatementsPerOp: number;
  readonly rawStatementsPerOp: number;
}

export async function benchNotices(opts: { noticeUrl: URL; noticeKey: string; gatewayDbUrl: string; rawDbUrl: string }): Promise<NoticeFigures> {
  // Built before the clock starts: signing and GBK-encoding are the sender's work, not the gateway's.
  const notices: BuiltNotice[] = Array.from({ length: WARM_UP + MAX_NOTICES }, () => buildNotice('send', sendFields(newTaobaoOrderId()), opts.noticeKey));
  const agent = keepAliveAgent(NOTICE_SENDERS);
  const sendNotice = async (n: BuiltNotice) => {
    const answer = await post(agent, opts.noticeUrl, n.body, n.contentType);
    if (answer.status !== 200 || answer.body !== NOTICE_ACK.ok) throw new Error(`notice answered ${answer.status} ${answer.body.slice(0, 200)}`);
  };
  try {
    const warm = await closedLoop({ concurrency: 4, maxRequests: WARM_UP, maxMs: 30_000, send: (i) => sendNotice(notices[i]!) });
    if (warm.failed > 0) throw new Error(`warm-up notices failed: ${warm.firstError}`);
    // The ceiling first, while the gateway is idle (its warm-up work drained), so neither pays for the other.
    const templates = await readTemplates(opts.gatewayDbUrl);
    await waitForIdleWork(opts.gatewayDbUrl, IDLE_WAIT_MS);
    const raw = await rawCeiling(opts.rawDbUrl, templates);
    const measured = await countStatements(opts.gatewayDbUrl, () =>
      closedLoop({ concurrency: NOTICE_SENDERS, maxRequests: MAX_NOTICES, maxMs: MAX_MS, send: (i) => sendNotice(notices[WARM_UP + i]!) }),
    );
    const gateway = measured.result;
    return { gateway, raw: raw.result, gatewayStatementsPerOp: measured.statements / gateway.ok, rawStatementsPerOp: raw.statements / raw.result.ok };
  } finally {
    agent.destroy();
  }
}

type Row = Record<string, unknown>;
interface Templates {
  readonly inbound: Row;
  readonly order: Row;
  readonly work: Row;
}

/** The rows one real notice committed, read back from the gateway's database, so the ceiling writes the same data. */
async function readTemplates(dbUrl: string): Promise<Templates> {
  const conn = await createConnection({ uri: dbUrl });
  try {
    const [inbound] = await conn.query<RowDataPacket[]>(`SELECT * FROM inbound_messages WHERE source = 'taobao' AND method = 'send' ORDER BY id DESC LIMIT 1`);
    const [order] = await conn.query<RowDataPacket[]>(`SELECT * FROM orders ORDER BY created_at DESC LIMIT 1`);
    if (!inbound[0] || !order[0]) throw new Error('no notice rows to copy: did the warm-up notices commit?');
    const [work] = await conn.query<RowDataPacket[]>(`SELECT * FROM work_items WHERE order_id = ? ORDER BY id ASC LIMIT 1`, [order[0]['id']]);
    if (!work[0]) throw new Error('the notice left no work item');
    // As the notice's transaction left them (the work runner may have moved them on since).
    const o: Row = { ...order[0], state: OrderState.Received, supplier_order_id: null, supplier_sub_order_ids: null };
    const w: Row = { ...work[0], status: 'pending', attempts: 0, lease_owner: null, lease_until: null, last_error: null };
    delete w['id'];
    const i: Row = { ...inbound[0] };
    delete i['id'];
    return { inbound: i, order: o, work: w };
  } finally {
    await conn.end();
  }
}

async function rawCeiling(dbUrl: string, t: Templates): Promise<{ result: LoadResult; statements: number }> {
  const pool = createPool({ uri: dbUrl, connectionLimit: NOTICE_SENDERS });
  const run = randomBytes(3).toString('hex');
  const insert = (table: string, row: Row) => {
    const cols = Object.keys(row);
    return { sql: `INSERT INTO ${table} (${cols.map((c) => `\`${c}\``).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`, values: (r: Row) => cols.map((c) => r[c]) };
  };
  const inboundSql = insert('inbound_messages', t.inbound);
  const orderSql = insert('orders', t.order);
  const workSql = insert('work_items', t.work);
  const orderIdLength = String(t.order['id']).length;
  const once = async (i: number) => {
    const now = Date.now();
    const orderId = `o_raw${run}${i}`.padEnd(orderIdLength, 'x');
    const taobaoOrderId = `9${run.slice(0, 3)}${String(i).padStart(12, '0')}`.replace(/[^0-9]/g, '7');
    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      await conn.query(inboundSql.sql, inboundSql.values({ ...t.inbound, dedup_key: `raw:${run}:${i}`, received_at: now }));
      await conn.query(orderSql.sql, orderSql.values({ ...t.order, id: orderId, taobao_order_id: taobaoOrderId, created_at: now, updated_at: now }));
      await conn.query(workSql.sql, workSql.values({ ...t.work, idempotency_key: `place:${orderId}`, order_id: orderId, next_attempt_at: now, created_at: now, updated_at: now }));
      await conn.commit();
    } catch (err) {
      await conn.rollback().catch(() => undefined);
      throw err;
    } finally {
      conn.release();
    }
  };
  try {
    await closedLoop({ concurrency: 4, maxRequests: WARM_UP, maxMs: 30_000, send: (i) => once(1_000_000 + i) });
    return await countStatements(dbUrl, () => closedLoop({ concurrency: NOTICE_SENDERS, maxRequests: MAX_NOTICES, maxMs: MAX_MS, send: once }));
  } finally {
    await pool.end();
  }
}
