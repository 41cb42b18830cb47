/**
 * A Lianhe open-API server: JSON `{partnerId, body}` POSTs to /openapi/index.php?method=…, verifies the
 * `Authorization: LH api:base64(HMAC-SHA1(secret, "POST " + uri + "\n" + Date))` header and the Date's
 * freshness, keeps order state, and sends signed snNotify / reNotify notifications.
 * Independent of the adapter's code so it checks the adapter rather than mirrors it.
 */
import { createHmac } from 'node:crypto';
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

export interface LianheSimOptions {
  readonly partnerId?: number;
  readonly apiName?: string;
  readonly clientSecret?: string;
  readonly deals?: readonly string[];
  /** Max accepted age of the Date header. */
  readonly maxSkewMs?: number;
}

export interface LianheSimOrder {
  readonly orderId: string;
  readonly lhOrderId: string;
  readonly dealId: string;
  readonly quantity: number;
  readonly visitors: number;
  used: number;
  refunded: number;
  pending: number;
  status: number;
  smsSent: number;
  readonly refunds: Map<string, { quantity: number; outcome?: 'approved' | 'rejected' }>;
}

const hmac = (secret: string, text: string) => createHmac('sha1', secret).update(text, 'utf8').digest('base64');

export class LianheSimulator {
  readonly partnerId: number;
  readonly apiName: string;
  readonly clientSecret: string;
  readonly switches: SimulatorSwitches = { ...DEFAULT_SWITCHES };
  readonly orders = new Map<string, LianheSimOrder>();
  readonly methods: string[] = [];
  badSignatures = 0;
  private server?: RunningServer;
  private seq = 15000;
  private readonly deals: Set<string>;
  private readonly maxSkewMs: number;

  constructor(opts: LianheSimOptions = {}) {
    this.partnerId = opts.partnerId ?? 1985;
    this.apiName = opts.apiName ?? 'testapi';
    this.clientSecret = opts.clientSecret ?? 'lianhe-test-secret';
    this.deals = new Set(opts.deals ?? ['9001', '9002']);
    this.maxSkewMs = opts.maxSkewMs ?? 10 * 60_000;
  }

  get baseUrl(): string {
    if (!this.server) throw new Error('simulator not started');
    return this.server.url;
  }

  async start(): Promise<this> {
    this.server = await startSimServer(() => this.switches, (r) => this.handle(r), '{"code":10000,"describe":"执行成功","body":{"LHOrderId":');
    return this;
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  resetSwitches(): void {
    Object.assign(this.switches, DEFAULT_SWITCHES);
  }

  mustOrder(orderId: string): LianheSimOrder {
    const o = this.orders.get(orderId);
    if (!o) throw new Error(`no simulated order ${orderId}`);
    return o;
  }

  admit(orderId: string, count: number): void {
    const o = this.mustOrder(orderId);
    if (o.used + o.refunded + o.pending + count > o.quantity) throw new Error('not enough usable tickets');
    o.used += count;
    o.status = o.used + o.refunded >= o.quantity ? 9 : 8;
  }

  /** Signed headers of a notification (uri is always /openapi/index.php?method=notify). */
  notifyHeaders(opts: { forgeSign?: boolean; date?: Date } = {}): Record<string, string> {
    const date = (opts.date ?? new Date()).toUTCString();
    const sig = hmac(opts.forgeSign ? 'not-the-secret' : this.clientSecret, `POST /openapi/index.php?method=notify\n${date}`);
    return {
      'content-type': 'application/json; charset=utf-8',
      date,
      version: '2.1',
      partnerid: String(this.partnerId),
      authorization: `LH ${this.apiName}:${sig}`,
    };
  }

  /** Admits and sends snNotify (cumulative usedQuantity). */
  async sendAdmissionCallback(url: string, orderId: string, count: number, opts: { forgeSign?: boolean } = {}): Promise<CallbackDelivery[]> {
    this.admit(orderId, count);
    const o = this.mustOrder(orderId);
    const body = JSON.stringify({
      code: 10000,
      describe: '执行成功',
      partnerId: this.partnerId,
      method: 'snNotify',
      body: { orderId, LHOrderId: o.lhOrderId, orderStatus: o.status, orderQuantity: o.quantity - o.refunded, usedQuantity: o.used, sncode: '' },
    });
    return deliver(url, { method: 'POST', headers: this.notifyHeaders(opts), body }, this.switches.callbackCopies);
  }

  /** Decides a refund in the back office and sends reNotify (10000 approved / 20000 rejected). */
  async sendRefundAuditCallback(url: string, orderId: string, refundId: string, approve: boolean, opts: { forgeSign?: boolean } = {}): Promise<CallbackDelivery[]> {
    const o = this.mustOrder(orderId);
    const refund = o.refunds.get(refundId);
    if (!refund) throw new Error(`no refund ${refundId}`);
    if (!refund.outcome) {
      refund.outcome = approve ? 'approved' : 'rejected';
      o.pending -= refund.quantity;
      if (approve) o.refunded += refund.quantity;
      o.status = approve ? 6 : 7;
    }
    const body = JSON.stringify(
      refund.outcome === 'approved'
        ? { code: 10000, describe: '执行成功', partnerId: this.partnerId, method: 'reNotify', body: { orderId, LHOrderId: o.lhOrderId, refundId, orderStatus: 6, quantity: refund.quantity, reQuantity: o.refunded } }
        : { code: 20000, describe: '退款审核已驳回', partnerId: this.partnerId, method: 'reNotify', body: { orderId, LHOrderId: o.lhOrderId, refundId, orderStatus: 7, reStatus: 4 } },
    );
    return deliver(url, { method: 'POST', headers: this.notifyHeaders(opts), body }, this.switches.callbackCopies);
  }

  // --- server ---

  private handle(req: SimRequest): SimReply {
    const method = req.url.searchParams.get('method') ?? '';
    if (req.method !== 'POST' || req.url.pathname !== '/openapi/index.php') return { status: 404, contentType: 'text/plain', body: 'not found' };
    const date = String(req.headers['date'] ?? '');
    const uri = `${req.url.pathname}${req.url.search}`;
    const expected = `LH ${this.apiName}:${hmac(this.clientSecret, `POST ${uri}\n${date}`)}`;
    const fresh = Math.abs(Date.now() - Date.parse(date)) <= this.maxSkewMs && /GMT$/.test(date);
    if (req.headers['authorization'] !== expected || !fresh || req.headers['partnerid'] !== String(this.partnerId) || !req.headers['version']) {
      this.badSignatures++;
      return { status: 401, contentType: 'application/json', body: JSON.stringify({ code: 20000, describe: '签名验证失败' }) };
    }
    let msg: { partnerId?: unknown; body?: Record<string, any> };
    try {
      msg = JSON.parse(req.body.toString('utf8'));
    } catch {
      return this.fail('请求格式错误', {});
    }
    if (msg.partnerId !== this.partnerId || typeof msg.body !== 'object' || msg.body === null) return this.fail('合作方ID错误', {});
    this.methods.push(method);
    const b = msg.body;
    switch (method) {
      case 'newOrder':
        return this.newOrder(b);
      case 'queryOrder': {
        const o = this.find(b);
        if (!o) return this.fail('订单不存在', {});
        return this.ok({ orderId: o.orderId, LHOrderId: o.lhOrderId, orderStatus: o.status, orderQuantity: o.quantity - o.refunded, useQuantity: o.used, reQuantity: o.refunded, reStatus: 0 });
      }
      case 'send': {
        const o = this.find(b);
        if (!o) return this.fail('订单不存在', {});
        o.smsSent++;
        return this.ok({ voucherType: 0, voucher: voucherOf(o) });
      }
      case 'cancelOrder':
        return this.cancel(b);
      default:
        return this.fail(`未知方法 ${method}`, {});
    }
  }

  private newOrder(b: Record<string, any>): SimReply {
    const orderId = String(b.orderId ?? '');
    const quantity = Number(b.quantity);
    const visitors: unknown[] = Array.isArray(b.visitor) ? b.visitor : [];
    if (!orderId || !Number.isInteger(quantity) || quantity <= 0 || visitors.length === 0 || typeof b.sellPrice !== 'number') return this.fail('参数错误', {});
    // orderId is unique on Lianhe's side: a repeat returns the order already made.
    const existing = this.orders.get(orderId);
    if (existing) return this.ok({ LHOrderId: existing.lhOrderId, orderStatus: 4, voucherType: 0, voucher: voucherOf(existing) });
    if (!this.deals.has(String(b.LHDealId))) return this.fail('产品不存在', {});
    const o: LianheSimOrder = {
      orderId,
      lhOrderId: String(++this.seq),
      dealId: String(b.LHDealId),
      quantity,
      visitors: visitors.length,
      used: 0,
      refunded: 0,
      pending: 0,
      status: 4,
      smsSent: b.smsfrom === 0 ? 1 : 0,
      refunds: new Map(),
    };
    this.orders.set(orderId, o);
    return this.ok({ LHOrderId: o.lhOrderId, orderStatus: 4, voucherType: 0, voucher: voucherOf(o) });
  }

  private cancel(b: Record<string, any>): SimReply {
    const o = this.find(b);
    if (!o) return this.fail('订单不存在', {});
    const refundId = String(b.refundId ?? o.orderId);
    if (o.refunds.has(refundId)) return this.ok({ LHOrderId: o.lhOrderId, orderStatus: 6, reQuantity: o.quantity - o.used - o.refunded - o.pending });
    const refundable = o.quantity - o.used - o.refunded - o.pending;
    if (refundable === 0) {
      // Already refunded / consumed: fail with our order state so the partner can adopt it.
      return this.fail('执行失败', { LHOrderId: o.lhOrderId, orderStatus: o.status, reQuantity: 0, reStatus: 2 });
    }
    const quantity = Number(b.quantity);
    if (!Number.isInteger(quantity) || quantity <= 0 || quantity > refundable) {
      return this.fail('执行失败', { LHOrderId: o.lhOrderId, orderStatus: 7, reQuantity: refundable, reStatus: 2 });
    }
    o.refunds.set(refundId, { quantity });
    o.pending += quantity;
    return this.ok({ LHOrderId: o.lhOrderId, orderStatus: 6, reQuantity: refundable - quantity });
  }

  private find(b: Record<string, any>): LianheSimOrder | undefined {
    const o = this.orders.get(String(b.orderId));
    return o && o.lhOrderId === String(b.LHOrderId) ? o : undefined;
  }

  private ok(body: Record<string, unknown>): SimReply {
    return { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ code: 10000, describe: '执行成功', partnerId: this.partnerId, body }) };
  }

  private fail(describe: string, body: Record<string, unknown>): SimReply {
    return { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ code: 20000, describe, partnerId: this.partnerId, body }) };
  }
}

function voucherOf(o: LianheSimOrder): string {
  return `LH${o.lhOrderId}${o.orderId.length}`;
}
