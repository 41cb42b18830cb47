/**
 * A Zhiyoubao (PWB) server: form POST `xmlMsg` + `sign`, verifies `md5("xmlMsg=" + xml + key)` and the
 * identity, keeps order state, audits refunds, and sends signed GET callbacks. Written independently of
 * the adapter (its own XML handling and signing) so it checks the adapter rather than mirrors it.
 */
import { createHash } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import {
  type CallbackDelivery,
  DEFAULT_SWITCHES,
  deliver,
  type RunningServer,
  type SimReply,
  type SimRequest,
  type SimulatorSwitches,
  startSimServer,
} from './sim-http';

export interface ZhiyoubaoSimOptions {
  readonly corpCode?: string;
  readonly userName?: string;
  readonly privateKey?: string;
  /** Ticket types (goodsCode) the simulator sells; anything else is refused. */
  readonly goods?: readonly string[];
  /** Ticket types that need one credential per ticket. */
  readonly realNameGoods?: readonly string[];
}

interface SimBatch {
  readonly batchNo: string;
  readonly quantity: number;
  queries: number;
  outcome?: 'approved' | 'rejected';
}

export interface ZhiyoubaoSimOrder {
  readonly orderCode: string;
  readonly zybOrderCode: string;
  readonly subOrderCode: string;
  readonly assistCheckNo: string;
  readonly goodsCode: string;
  readonly quantity: number;
  readonly occDate: string;
  readonly credentialCount: number;
  used: number;
  refunded: number;
  pending: number;
  smsSent: number;
  readonly checks: { num: number; time: string }[];
  readonly batches: Map<string, SimBatch>;
  readonly returnsByThirdCode: Map<string, string>;
}

/** A 1x1 PNG: the QR image the simulator serves. */
export const QR_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');

const xml = new XMLParser({ processEntities: true, htmlEntities: false, parseTagValue: false, ignoreDeclaration: true, isArray: (n) => n === 'ticketOrder' || n === 'credential' });

function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export class ZhiyoubaoSimulator {
  readonly corpCode: string;
  readonly userName: string;
  readonly privateKey: string;
  readonly switches: SimulatorSwitches = { ...DEFAULT_SWITCHES };
  readonly orders = new Map<string, ZhiyoubaoSimOrder>();
  /** Transaction names received with a valid signature, in order. */
  readonly transactions: string[] = [];
  badSignatures = 0;
  /** GETs of QR images, and how many of the next ones answer 503. */
  imageRequests = 0;
  imageFailures = 0;
  /** Sign refund audit callbacks with the `orderCode=` prefix (the S29 variant). */
  prefixedRefundAuditSign = false;
  private server?: RunningServer;
  private seq = 0;
  private readonly goods: Set<string>;
  private readonly realNameGoods: Set<string>;

  constructor(opts: ZhiyoubaoSimOptions = {}) {
    this.corpCode = opts.corpCode ?? 'TESTFX';
    this.userName = opts.userName ?? 'admin';
    this.privateKey = opts.privateKey ?? 'zyb-test-private-key';
    this.goods = new Set(opts.goods ?? ['PST20170001', 'PST20170002']);
    this.realNameGoods = new Set(opts.realNameGoods ?? ['PST20170002']);
  }

  get endpoint(): string {
    if (!this.server) throw new Error('simulator not started');
    return `${this.server.url}/boss/service/code.htm`;
  }

  async start(): Promise<this> {
    this.server = await startSimServer(() => this.switches, (r) => this.handle(r), '<PWBResponse><transactionName>SEND_CODE_RES</transactionName><code>0</co');
    return this;
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  resetSwitches(): void {
    Object.assign(this.switches, DEFAULT_SWITCHES);
  }

  /** Visitors passed the scenic spot's own gate. */
  admit(orderCode: string, count: number): void {
    const o = this.mustOrder(orderCode);
    if (o.used + o.refunded + o.pending + count > o.quantity) throw new Error('not enough usable tickets');
    o.used += count;
    o.checks.push({ num: count, time: '2025-05-01 10:00:00' });
  }

  /** Admits and sends the check (consume) notice, signed md5("order_no=" + order_no + key). */
  async sendAdmissionCallback(url: string, orderCode: string, count: number, opts: { forgeSign?: boolean } = {}): Promise<CallbackDelivery[]> {
    this.admit(orderCode, count);
    const o = this.mustOrder(orderCode);
    const params = new URLSearchParams({
      order_no: orderCode,
      sub_order_no: o.subOrderCode,
      status: 'check',
      checkNum: String(count),
      returnNum: String(o.refunded),
      total: String(o.quantity),
      sign: opts.forgeSign ? md5(`order_no=${orderCode}wrong-key`) : md5(`order_no=${orderCode}${this.privateKey}`),
    });
    return deliver(`${url}?${params}`, { method: 'GET' }, this.switches.callbackCopies);
  }

  /** Sends the order-finished notice, signed md5("order_code=" + order_code + key). */
  async sendOrderFinishedCallback(url: string, orderCode: string): Promise<CallbackDelivery[]> {
    const o = this.mustOrder(orderCode);
    const params = new URLSearchParams({
      order_code: orderCode,
      status: o.refunded === o.quantity ? 'cancel' : 'success',
      checkNum: String(o.used),
      returnNum: String(o.refunded),
      total: String(o.quantity),
      sign: md5(`order_code=${orderCode}${this.privateKey}`),
    });
    return deliver(`${url}?${params}`, { method: 'GET' }, this.switches.callbackCopies);
  }

  /** Decides a refund batch and sends the retreat audit notice, signed md5(orderCode + key). */
  async sendRefundAuditCallback(url: string, orderCode: string, batchNo: string, approve: boolean, opts: { forgeSign?: boolean } = {}): Promise<CallbackDelivery[]> {
    const o = this.mustOrder(orderCode);
    const batch = o.batches.get(batchNo);
    if (!batch) throw new Error(`no batch ${batchNo}`);
    this.decide(o, batch, approve ? 'approved' : 'rejected');
    const base = this.prefixedRefundAuditSign ? `orderCode=${orderCode}` : orderCode;
    const params = new URLSearchParams({
      orderCode,
      subOrderCode: o.subOrderCode,
      retreatBatchNo: batchNo,
      auditStatus: batch.outcome === 'approved' ? 'success' : 'failure',
      returnNum: String(batch.quantity),
      sign: md5(`${base}${opts.forgeSign ? 'not-the-key' : this.privateKey}`),
    });
    return deliver(`${url}?${params}`, { method: 'GET' }, this.switches.callbackCopies);
  }

  mustOrder(orderCode: string): ZhiyoubaoSimOrder {
    const o = this.orders.get(orderCode);
    if (!o) throw new Error(`no simulated order ${orderCode}`);
    return o;
  }

  // --- server ---

  private handle(req: SimRequest): SimReply {
    // The QR image QUERY_IMG_URL_REQ points at (one per order, named after its assistCheckNo).
    const img = /^\/img\/([^/]+)\.png$/.exec(req.url.pathname);
    if (req.method === 'GET' && img) {
      this.imageRequests++;
      if (this.imageFailures > 0) {
        this.imageFailures--;
        return { status: 503, contentType: 'text/plain', body: 'image service busy' };
      }
      const known = [...this.orders.values()].some((o) => o.assistCheckNo === img[1]);
      return known ? { status: 200, contentType: 'image/png', body: QR_PNG } : { status: 404, contentType: 'text/plain', body: 'not found' };
    }
    if (req.method !== 'POST' || req.url.pathname !== '/boss/service/code.htm') return { status: 404, contentType: 'text/plain', body: 'not found' };
    const form = new URLSearchParams(req.body.toString('utf8'));
    const xmlMsg = form.get('xmlMsg') ?? '';
    if (md5(`xmlMsg=${xmlMsg}${this.privateKey}`) !== form.get('sign')) {
      this.badSignatures++;
      return { status: 403, contentType: 'text/plain', body: 'sign error' };
    }
    const doc = xml.parse(xmlMsg) as { PWBRequest?: Record<string, any> };
    const r = doc.PWBRequest;
    if (!r || r.identityInfo?.corpCode !== this.corpCode || r.identityInfo?.userName !== this.userName) {
      return this.reply('ERROR_RES', 1, '身份验证失败');
    }
    const name = String(r.transactionName);
    this.transactions.push(name);
    const body = r.orderRequest ?? {};
    switch (name) {
      case 'SEND_CODE_REQ':
        return this.sendCode(body.order);
      case 'QUERY_ORDER_REQ': {
        const o = this.orders.get(String(body.order?.orderCode));
        return o ? this.reply('QUERY_ORDER_RES', 0, '成功', this.orderXml(o)) : this.reply('QUERY_ORDER_RES', 2, '订单不存在');
      }
      case 'CHECK_STATUS_QUERY_REQ':
      case 'QUERY_SUB_ORDER_CHECK_RECORD_REQ': {
        const o = this.orders.get(String(body.order?.orderCode));
        if (!o) return this.reply(name.replace('_REQ', '_RES'), 2, '订单不存在');
        const status = o.used === 0 ? 'un_check' : o.used + o.refunded >= o.quantity ? 'checked' : 'checking';
        const records =
          name === 'QUERY_SUB_ORDER_CHECK_RECORD_REQ'
            ? `<checkRecords>${o.checks.map((c) => `<subOrderCheckRecord><checkNum>${c.num}</checkNum><checkTime>${c.time}</checkTime></subOrderCheckRecord>`).join('')}</checkRecords>`
            : '';
        return this.reply(
          name.replace('_REQ', '_RES'),
          0,
          '成功',
          `<subOrders><subOrder><orderCode>${o.subOrderCode}</orderCode><needCheckNum>${o.quantity}</needCheckNum><alreadyCheckNum>${o.used}</alreadyCheckNum><returnNum>${o.refunded}</returnNum><checkStatus>${status}</checkStatus><orderType>scenic</orderType>${records}</subOrder></subOrders>`,
        );
      }
      case 'SEND_SM_REQ': {
        const o = this.orders.get(String(body.order?.orderCode));
        if (!o) return this.reply('SEND_SM_RES', 2, '订单不存在');
        o.smsSent++;
        return this.reply('SEND_SM_RES', 0, '成功');
      }
      case 'RETURN_TICKET_NUM_NEW_REQ': {
        const rt = body.returnTicket ?? {};
        return this.refund('RETURN_TICKET_NUM_NEW_RES', String(rt.orderCode), Number(rt.returnNum), String(rt.thirdReturnCode ?? ''));
      }
      case 'SEND_CODE_CANCEL_NEW_REQ': {
        const o = this.orders.get(String(body.order?.orderCode));
        if (!o) return this.reply('SEND_CODE_CANCEL_RES', 2, '订单不存在');
        return this.refund('SEND_CODE_CANCEL_RES', o.orderCode, o.quantity - o.used - o.refunded - o.pending, `cancel:${o.orderCode}`);
      }
      case 'QUERY_RETREAT_STATUS_REQ':
        return this.retreatStatus(String(body.order?.retreatBatchNo));
      case 'QUERY_IMG_URL_REQ': {
        const o = this.orders.get(String(body.order?.orderCode));
        if (!o) return this.reply('QUERY_IMG_URL_RES', 2, '订单不存在');
        return this.reply('QUERY_IMG_URL_RES', 0, '成功', `<imgUrl>http://127.0.0.1:${this.server?.port}/img/${o.assistCheckNo}.png</imgUrl>`);
      }
      default:
        return this.reply('ERROR_RES', 99, `不支持的交易 ${esc(name)}`);
    }
  }

  private sendCode(order: Record<string, any> | undefined): SimReply {
    const orderCode = String(order?.orderCode ?? '');
    const ticket = order?.ticketOrders?.ticketOrder?.[0];
    if (!orderCode || !ticket) return this.reply('SEND_CODE_RES', 1, '报文格式错误');
    if (this.orders.has(orderCode)) return this.reply('SEND_CODE_RES', 6, '订单已存在');
    const goodsCode = String(ticket.goodsCode);
    if (!this.goods.has(goodsCode)) return this.reply('SEND_CODE_RES', 3, `票型${esc(goodsCode)}不存在`);
    const quantity = Number(ticket.quantity);
    const credentials: unknown[] = ticket.credentials?.credential ?? [];
    if (this.realNameGoods.has(goodsCode) && credentials.length !== quantity) return this.reply('SEND_CODE_RES', 4, '实名制票型需每张票一个证件');
    this.seq++;
    const o: ZhiyoubaoSimOrder = {
      orderCode,
      zybOrderCode: `ZYB${String(100000 + this.seq)}`,
      subOrderCode: `ZYBS${String(100000 + this.seq)}`,
      assistCheckNo: String(md5(orderCode).replace(/[a-f]/g, '').padEnd(10, '7').slice(0, 10)),
      goodsCode,
      quantity,
      occDate: String(ticket.occDate),
      credentialCount: credentials.length,
      used: 0,
      refunded: 0,
      pending: 0,
      smsSent: 1,
      checks: [],
      batches: new Map(),
      returnsByThirdCode: new Map(),
    };
    this.orders.set(orderCode, o);
    return this.reply('SEND_CODE_RES', 0, '成功', this.orderXml(o));
  }

  private orderXml(o: ZhiyoubaoSimOrder): string {
    return `<orderResponse><order><certificateNo></certificateNo><linkName></linkName><linkMobile></linkMobile><orderCode>${o.zybOrderCode}</orderCode><orderPrice>0.00</orderPrice><payMethod>vm</payMethod><assistCheckNo>${o.assistCheckNo}</assistCheckNo><payStatus>payed</payStatus><src>interface</src><ticketOrders><ticketOrder><orderCode>${o.subOrderCode}</orderCode><quantity>${o.quantity}</quantity><occDate>${o.occDate}</occDate><goodsCode>${esc(o.goodsCode)}</goodsCode></ticketOrder></ticketOrders></order></orderResponse>`;
  }

  private refund(resName: string, orderCode: string, quantity: number, thirdCode: string): SimReply {
    const o = this.orders.get(orderCode);
    if (!o) return this.reply(resName, 2, '订单不存在');
    const known = thirdCode ? o.returnsByThirdCode.get(thirdCode) : undefined;
    if (known) return this.reply(resName, 0, '退票申请成功', `<retreatBatchNo>${known}</retreatBatchNo>`);
    const refundable = o.quantity - o.used - o.refunded - o.pending;
    if (!Number.isInteger(quantity) || quantity <= 0 || quantity > refundable) return this.reply(resName, 3, `可退票数不足,可退${refundable}张`);
    const batchNo = `RB${Date.now()}${this.seq++}`;
    o.batches.set(batchNo, { batchNo, quantity, queries: 0 });
    if (thirdCode) o.returnsByThirdCode.set(thirdCode, batchNo);
    o.pending += quantity;
    return this.reply(resName, 0, '退票申请成功', `<retreatBatchNo>${batchNo}</retreatBatchNo>`);
  }

  private retreatStatus(batchNo: string): SimReply {
    for (const o of this.orders.values()) {
      const batch = o.batches.get(batchNo);
      if (!batch) continue;
      if (!batch.outcome) {
        batch.queries++;
        if (this.switches.audit === 'pending' || batch.queries <= this.switches.auditPendingQueries) {
          return this.reply('QUERY_RETREAT_STATUS_RES', 6, '等待审核中');
        }
        this.decide(o, batch, this.switches.audit === 'approve' ? 'approved' : 'rejected');
      }
      return batch.outcome === 'approved'
        ? this.reply('QUERY_RETREAT_STATUS_RES', 0, '审核完成', `<returnNum>${batch.quantity}</returnNum>`)
        : this.reply('QUERY_RETREAT_STATUS_RES', 0, '审核未通过');
    }
    return this.reply('QUERY_RETREAT_STATUS_RES', 2, '退票批次不存在');
  }

  private decide(o: ZhiyoubaoSimOrder, batch: SimBatch, outcome: 'approved' | 'rejected'): void {
    if (batch.outcome) return;
    batch.outcome = outcome;
    o.pending -= batch.quantity;
    if (outcome === 'approved') o.refunded += batch.quantity;
  }

  private reply(transactionName: string, code: number, description: string, inner = ''): SimReply {
    return {
      status: 200,
      contentType: 'text/xml; charset=utf-8',
      body: `<?xml version="1.0" encoding="UTF-8"?><PWBResponse><transactionName>${transactionName}</transactionName><code>${code}</code><description>${description}</description>${inner}</PWBResponse>`,
    };
  }
}
