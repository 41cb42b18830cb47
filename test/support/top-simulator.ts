/**
 * A real HTTP server on 127.0.0.1 playing Taobao's TOP router for the e-voucher APIs. It checks what the
 * real router checks (app_key, session, timestamp within 10 min, md5/hmac signature), answers with the real
 * JSON envelopes, keeps per-order state (codes, consumed units, consume serial numbers), and records every
 * call. Switches make the next N calls of a method fail with a sub-code, hang, or answer HTTP 500.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyTopSignature, type TopSignMethod } from '../../src/taobao/top-signature';
import { parseTaobaoTime } from '../../src/taobao/taobao-time';

export interface TopSimulatorOptions {
  readonly appKey: string;
  readonly appSecret: string;
  readonly session: string;
  readonly codemerchantId: string;
  /** Gate devices registered for our code merchant; consume/reverse/beforeconsume need one of them. */
  readonly posids?: readonly string[];
  /** The simulator's clock (timestamp check). */
  readonly now?: () => number;
}

export interface RecordedCall {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly files: Readonly<Record<string, number>>; // name -> byte length
  readonly contentType: string;
}

interface CodeState {
  num: number;
  consumed: number;
  void: boolean;
}
interface SerialState {
  code: string;
  num: number;
  reversed: boolean;
}
interface OrderState {
  orderId: string;
  token: string;
  num: number;
  itemTitle: string;
  status: 'paid' | 'closed';
  sent: boolean;
  failSent: boolean;
  codes: Map<string, CodeState>;
  serials: Map<string, SerialState>;
}

export interface OrderSnapshot {
  readonly sent: boolean;
  readonly failSent: boolean;
  readonly status: 'paid' | 'closed';
  readonly codes: ReadonlyArray<{ code: string; num: number; consumed: number; void: boolean }>;
  readonly consumedTotal: number;
  readonly serials: ReadonlyArray<{ serial: string; code: string; num: number; reversed: boolean }>;
}

class TopError {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly subCode?: string,
    readonly subMsg?: string,
  ) {}
}

const MAX_BODY = 1024 * 1024;
const SKEW_MS = 10 * 60 * 1000;

type Switch =
  | { kind: 'fail'; left: number; code: number; subCode: string; subMsg: string }
  | { kind: 'hang'; left: number; applyEffect: boolean }
  | { kind: 'http500'; left: number; applyEffect: boolean };

export class TopSimulator {
  readonly calls: RecordedCall[] = [];
  private readonly orders = new Map<string, OrderState>();
  private readonly switches = new Map<string, Switch[]>();
  private readonly hung = new Set<ServerResponse>();
  private server: Server | undefined;
  private uploads = 0;
  private requestSeq = 0;
  private baseUrl = '';

  constructor(private readonly options: TopSimulatorOptions) {}

  get url(): string {
    if (!this.baseUrl) throw new Error('TopSimulator not started');
    return this.baseUrl;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(e));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/router/rest`;
    return this.baseUrl;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const res of this.hung) res.destroy();
    this.hung.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** An order Taobao knows about (paid, codes not yet sent). */
  addOrder(order: { orderId: string; token: string; num: number; itemTitle?: string }): void {
    this.orders.set(order.orderId, {
      ...order,
      itemTitle: order.itemTitle ?? '测试门票',
      status: 'paid',
      sent: false,
      failSent: false,
      codes: new Map(),
      serials: new Map(),
    });
  }

  /** Refunded / closed on Taobao's side: later calls get invalid-order-status. */
  closeOrder(orderId: string): void {
    this.mustOrder(orderId).status = 'closed';
  }

  order(orderId: string): OrderSnapshot {
    const o = this.mustOrder(orderId);
    const codes = [...o.codes].map(([code, c]) => ({ code, ...c }));
    return {
      sent: o.sent,
      failSent: o.failSent,
      status: o.status,
      codes,
      consumedTotal: codes.reduce((s, c) => s + c.consumed, 0),
      serials: [...o.serials].map(([serial, s]) => ({ serial, ...s })),
    };
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** The next `n` calls of `method` answer error_response code `code` (default 15) with this sub_code, no effect. */
  failNext(method: string, n: number, subCode: string, code = 15): void {
    this.pushSwitch(method, { kind: 'fail', left: n, code, subCode, subMsg: `simulated ${subCode}` });
  }

  /** The next `n` calls of `method` never get an answer; with applyEffect the call still takes effect. */
  hangNext(method: string, n: number, options: { applyEffect?: boolean } = {}): void {
    this.pushSwitch(method, { kind: 'hang', left: n, applyEffect: options.applyEffect ?? false });
  }

  /** The next `n` calls of `method` answer HTTP 500; with applyEffect the call still takes effect. */
  http500Next(method: string, n: number, options: { applyEffect?: boolean } = {}): void {
    this.pushSwitch(method, { kind: 'http500', left: n, applyEffect: options.applyEffect ?? false });
  }

  private pushSwitch(method: string, s: Switch): void {
    if (!(s.left > 0)) throw new Error('n must be positive');
    const list = this.switches.get(method) ?? [];
    list.push(s);
    this.switches.set(method, list);
  }

  private takeSwitch(method: string): Switch | undefined {
    const list = this.switches.get(method);
    const s = list?.[0];
    if (!list || !s) return undefined;
    if (--s.left === 0) list.shift();
    return s;
  }

  private mustOrder(orderId: string): OrderState {
    const o = this.orders.get(orderId);
    if (!o) throw new Error(`no simulated order ${orderId}`);
    return o;
  }

  // -------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks);
    const contentType = req.headers['content-type'] ?? '';
    const params: Record<string, string> = {};
    const files: Record<string, number> = {};
    for (const [k, v] of new URL(req.url ?? '/', 'http://x').searchParams) params[k] = v;
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    if (contentType.toLowerCase().startsWith('multipart/form-data')) {
      const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
      for (const [k, v] of form) {
        if (typeof v === 'string') params[k] = v;
        else files[k] = v.size;
      }
    } else {
      for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) params[k] = v;
    }
    const method = params['method'] ?? '';
    this.calls.push({ method, params, files, contentType });

    const authError = this.authenticate(params);
    if (authError) return this.reply(res, errorEnvelope(authError, this.nextRequestId()));

    const sw = this.takeSwitch(method);
    if (sw?.kind === 'fail') {
      return this.reply(res, errorEnvelope(new TopError(sw.code, 'Remote service error', sw.subCode, sw.subMsg), this.nextRequestId()));
    }
    // Without effect, a hang or a 500 happens before the request touches any state.
    if (sw?.kind === 'hang' && !sw.applyEffect) {
      this.hung.add(res);
      return;
    }
    if (sw?.kind === 'http500' && !sw.applyEffect) {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<html>500 Internal Server Error</html>');
      return;
    }
    let answer: unknown;
    try {
      answer = { [rootOf(method)]: { ...this.dispatch(method, params, files), request_id: this.nextRequestId() } };
    } catch (e) {
      if (!(e instanceof TopError)) throw e;
      answer = errorEnvelope(e, this.nextRequestId());
    }
    // The effect (if any) has happened by now; the switches decide whether the caller hears about it.
    if (sw?.kind === 'hang') {
      this.hung.add(res);
      return;
    }
    if (sw?.kind === 'http500') {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>');
      return;
    }
    this.reply(res, answer);
  }

  private reply(res: ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json;charset=UTF-8' }).end(JSON.stringify(body));
  }

  private nextRequestId(): string {
    return `sim${++this.requestSeq}`;
  }

  private authenticate(p: Record<string, string>): TopError | undefined {
    if (p['app_key'] !== this.options.appKey) return new TopError(29, 'Invalid App Key');
    const signMethod = p['sign_method'] ?? 'md5';
    if (signMethod !== 'md5' && signMethod !== 'hmac') return new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:sign_method');
    if (!p['sign']) return new TopError(25, 'Invalid Signature');
    if (!verifyTopSignature(p, this.options.appSecret, signMethod as TopSignMethod)) {
      return new TopError(25, 'Invalid Signature');
    }
    const ts = parseTaobaoTime(p['timestamp'] ?? '');
    const now = (this.options.now ?? Date.now)();
    if (ts === undefined || Math.abs(ts - now) > SKEW_MS) return new TopError(31, 'Invalid Timestamp');
    if (p['v'] !== '2.0') return new TopError(33, 'Invalid Version');
    if (p['format'] !== 'json') return new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:format');
    if (p['session'] !== this.options.session) return new TopError(27, 'Invalid Session');
    return undefined;
  }

  private dispatch(method: string, p: Record<string, string>, files: Record<string, number>): Record<string, unknown> {
    if (method !== 'taobao.vmarket.eticket.qrcode.upload' && p['codemerchant_id'] !== this.options.codemerchantId) {
      throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:codemerchant_id');
    }
    switch (method) {
      case 'taobao.vmarket.eticket.send':
        return this.send(p);
      case 'taobao.vmarket.eticket.resend':
        return this.resend(p);
      case 'taobao.vmarket.eticket.consume':
        return this.consume(p);
      case 'taobao.vmarket.eticket.reverse':
        return this.reverse(p);
      case 'taobao.vmarket.eticket.beforeconsume':
        return this.beforeConsume(p);
      case 'taobao.vmarket.eticket.failsend': {
        const o = this.orderFor(p, false);
        need(p, 'error_code');
        o.failSent = true;
        return { ret_code: 1 };
      }
      case 'taobao.vmarket.eticket.codes.get': {
        const o = this.orderFor(p, false, true);
        const codes = [...o.codes].map(([code, c]) => ({
          code,
          num: c.num - c.consumed,
          status: c.void ? 0 : 1,
          order_id: Number(o.orderId),
        }));
        return { eticket_codes: { eticket_code: codes }, total_results: codes.length };
      }
      case 'taobao.vmarket.eticket.qrcode.upload': {
        if (p['code_merchant_id'] !== this.options.codemerchantId) {
          throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:code_merchant_id');
        }
        const size = files['img_bytes'];
        if (!size) throw new TopError(40, 'Missing Required Arguments', 'isv.missing-parameter:img_bytes');
        if (size >= 300 * 1024) throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:img_bytes');
        return { ret_code: 1, img_filename: `qr_${++this.uploads}.png` };
      }
      default:
        throw new TopError(22, 'Invalid Method');
    }
  }

  /** Order by order_id, token checked (optional token for failsend/codes.get), closed orders refused. */
  private orderFor(p: Record<string, string>, checkToken = true, allowClosed = false): OrderState {
    const o = this.orders.get(need(p, 'order_id'));
    if (!o) throw biz('isv.eticket-order-not-found:invalid-orderid');
    if (checkToken && need(p, 'token') !== o.token) throw biz('isv.eticket-token-error:invalid-token');
    if (!checkToken && p['token'] !== undefined && p['token'] !== o.token) throw biz('isv.eticket-token-error:invalid-token');
    if (o.status !== 'paid' && !allowClosed) throw biz('isv.eticket-order-status-error:invalid-order-status');
    return o;
  }

  private send(p: Record<string, string>): Record<string, unknown> {
    const o = this.orderFor(p);
    const codes = parseVerifyCodes(need(p, 'verify_codes'));
    if (o.sent) throw biz('isv.eticket-send-error:code-alreay-send');
    if (codes.reduce((s, c) => s + c.num, 0) !== o.num) {
      throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:verify_codes');
    }
    checkQrImages(p, codes.length);
    for (const c of codes) o.codes.set(c.code, { num: c.num, consumed: 0, void: false });
    o.sent = true;
    return { ret_code: 1 };
  }

  private resend(p: Record<string, string>): Record<string, unknown> {
    const o = this.orderFor(p);
    const codes = parseVerifyCodes(need(p, 'verify_codes'));
    const usable = [...o.codes.values()].some((c) => !c.void && c.consumed < c.num);
    if (!o.sent || !usable) throw biz('isv.eticket-resend-error:no-can-resend-code');
    checkQrImages(p, codes.length);
    const listed = new Set(codes.map((c) => c.code));
    for (const [code, c] of o.codes) if (!listed.has(code)) c.void = true;
    for (const c of codes) if (!o.codes.has(c.code)) o.codes.set(c.code, { num: c.num, consumed: 0, void: false });
    return { ret_code: 1 };
  }

  private checkPos(p: Record<string, string>): void {
    const posid = need(p, 'posid');
    if (this.options.posids && !this.options.posids.includes(posid)) {
      throw biz('isv.eticket-invalid-parameter:invalid-posid');
    }
  }

  private consume(p: Record<string, string>): Record<string, unknown> {
    const o = this.orderFor(p);
    this.checkPos(p);
    const serial = need(p, 'serial_num');
    if (!/^[A-Za-z0-9_]{1,100}$/.test(serial)) throw biz('isv.eticket-invalid-parameter:invalid-consume-serial-num');
    // A serial already seen answers duplicate and changes nothing.
    if (o.serials.has(serial)) throw biz('isv.eticket-invalid-parameter:duplicate-consume-serial-num');
    const codeText = need(p, 'verify_code');
    const code = o.codes.get(codeText);
    if (!code || code.void || code.consumed >= code.num) throw biz('isv.eticket-consume-error:code-not-available');
    const n = Number(need(p, 'consume_num'));
    if (!Number.isSafeInteger(n) || n < 1) throw biz('isv.eticket-order-consume-num:consume-num-invalid');
    if (code.consumed + n > code.num) throw biz('isv.eticket-order-consume-num:consume-num-overflow');
    code.consumed += n;
    o.serials.set(serial, { code: codeText, num: n, reversed: false });
    return {
      ret_code: 1,
      left_num: leftOf(o),
      code_left_num: code.num - code.consumed,
      item_title: o.itemTitle,
      consume_secial_num: serial,
    };
  }

  private reverse(p: Record<string, string>): Record<string, unknown> {
    const o = this.orderFor(p);
    this.checkPos(p);
    const s = o.serials.get(need(p, 'consume_secial_num'));
    if (!s || s.reversed) throw biz('isv.eticket-reverse-error:consume-serial-num-not-found');
    if (need(p, 'reverse_code') !== s.code || Number(need(p, 'reverse_num')) !== s.num) {
      throw biz('isv.eticket-order-consume-num:consume-num-invalid');
    }
    const code = o.codes.get(s.code)!;
    code.consumed -= s.num;
    s.reversed = true;
    return { ret_code: 1, left_num: leftOf(o), item_title: o.itemTitle };
  }

  private beforeConsume(p: Record<string, string>): Record<string, unknown> {
    const o = this.orderFor(p);
    this.checkPos(p);
    const code = o.codes.get(need(p, 'verify_code'));
    if (!code || code.void) throw biz('isv.eticket-consume-error:code-not-available');
    const left = code.num - code.consumed;
    return {
      ret_code: left > 0 ? 1 : 0,
      left_num: leftOf(o),
      code_left_num: left,
      item_title: o.itemTitle,
      order_id: Number(o.orderId),
      valid_start: '2024-01-01 00:00:00',
      valid_ends: '2030-12-31 23:59:59',
    };
  }
}

function leftOf(o: OrderState): number {
  let left = 0;
  for (const c of o.codes.values()) if (!c.void) left += c.num - c.consumed;
  return left;
}

function need(p: Record<string, string>, name: string): string {
  const v = p[name];
  if (v === undefined || v === '') throw new TopError(40, 'Missing Required Arguments', `isv.missing-parameter:${name}`);
  return v;
}

function biz(subCode: string): TopError {
  return new TopError(15, 'Remote service error', subCode, subCode.split(':')[1]);
}

function parseVerifyCodes(text: string): Array<{ code: string; num: number }> {
  const out: Array<{ code: string; num: number }> = [];
  for (const part of text.split(',')) {
    const m = /^([^:,\s]+):([1-9]\d*)$/.exec(part);
    if (!m) throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:verify_codes');
    out.push({ code: m[1]!, num: Number(m[2]) });
  }
  return out;
}

function checkQrImages(p: Record<string, string>, codeCount: number): void {
  const qr = p['qr_images'];
  if (qr !== undefined && qr.split(',').length !== codeCount) {
    throw new TopError(41, 'Invalid Arguments', 'isv.invalid-parameter:qr_images');
  }
}

function rootOf(method: string): string {
  return method.replace(/^taobao\./, '').replace(/\./g, '_') + '_response';
}

function errorEnvelope(e: TopError, requestId: string): unknown {
  return {
    error_response: { code: e.code, msg: e.msg, sub_code: e.subCode, sub_msg: e.subMsg, request_id: requestId },
  };
}
