/**
 * Client for Taobao's TOP router, limited to the e-voucher (taobao.vmarket.eticket.*) calls a code merchant
 * makes. Every answer becomes a TopOutcome; only a request we refuse to build (bad serial number, empty
 * code list...) throws, as a TopRequestError. No retries here: the caller's durable work queue retries.
 */
import type { Clock } from '../domain/model';
import { systemClock } from '../domain/model';
import { classifyHttpStatus, classifyTopError } from './top-error-classification';
import { signTopRequest, type TopSignMethod } from './top-signature';
import { formatTaobaoTime, parseTaobaoTime } from './taobao-time';

export interface TopClientConfig {
  /** e.g. https://eco.taobao.com/router/rest */
  readonly routerUrl: string;
  readonly appKey: string;
  readonly appSecret: string;
  /** The code merchant's session (access token). */
  readonly session: string;
  /** Our code-merchant id, sent on every call (`codemerchant_id`; `code_merchant_id` for qrcode.upload). */
  readonly codemerchantId: string;
  readonly signMethod?: TopSignMethod;
  /** Whole-call deadline (connect + answer), default 10 s. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

/** What a call came to. `already_done` is success-equivalent: the effect exists from an earlier attempt. */
export type TopOutcome<B> =
  | { readonly kind: 'ok'; readonly body: B }
  | { readonly kind: 'already_done'; readonly code: string; readonly subCode: string; readonly message: string }
  | {
      readonly kind: 'retryable';
      readonly code: string;
      readonly subCode?: string;
      readonly message: string;
      /** The request may have taken effect (timeout, cut connection, 5xx): retry with the same serial number. */
      readonly ambiguous: boolean;
    }
  | { readonly kind: 'terminal'; readonly code: string; readonly subCode?: string; readonly message: string };

/** A request we will not send: a bug or bad data on our side, never Taobao's answer. */
export class TopRequestError extends Error {
  readonly code = 'TOP_INVALID_REQUEST';
  override readonly name = 'TopRequestError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export interface VerifyCode {
  readonly code: string;
  readonly num: number;
}

interface ResponseBase {
  /** The `<api>_response` object as received, for anything not typed here. */
  readonly raw: Readonly<Record<string, unknown>>;
  readonly requestId?: string;
}
export interface RetCodeResponse extends ResponseBase {
  readonly retCode: number;
}
export interface ConsumeResponse extends RetCodeResponse {
  /** Units left on the order / on this code. */
  readonly leftNum?: number;
  readonly codeLeftNum?: number;
  readonly itemTitle?: string;
  readonly smsTpl?: string;
  readonly printTpl?: string;
  readonly consumeSerialNum?: string;
}
export interface ReverseResponse extends RetCodeResponse {
  readonly leftNum?: number;
  readonly itemTitle?: string;
}
export interface BeforeConsumeResponse extends RetCodeResponse {
  /** ret_code 1: the code may be consumed now. */
  readonly consumable: boolean;
  readonly validStart?: number;
  readonly validEnd?: number;
  readonly leftNum?: number;
  readonly codeLeftNum?: number;
  readonly itemTitle?: string;
}
export interface EticketCode {
  readonly code: string;
  readonly num: number;
  readonly status?: number;
  readonly qrcodeUrl?: string;
}
export interface CodesGetResponse extends ResponseBase {
  readonly codes: readonly EticketCode[];
  readonly totalResults: number;
}
export interface QrcodeUploadResponse extends RetCodeResponse {
  readonly imgFilename: string;
}

export const TOP_API = {
  send: 'taobao.vmarket.eticket.send',
  resend: 'taobao.vmarket.eticket.resend',
  consume: 'taobao.vmarket.eticket.consume',
  reverse: 'taobao.vmarket.eticket.reverse',
  beforeConsume: 'taobao.vmarket.eticket.beforeconsume',
  failSend: 'taobao.vmarket.eticket.failsend',
  codesGet: 'taobao.vmarket.eticket.codes.get',
  qrcodeUpload: 'taobao.vmarket.eticket.qrcode.upload',
} as const;

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_QR_BYTES = 300 * 1024;
const ORDER_ID = /^[1-9]\d{0,19}$/;
const VERIFY_CODE = /^[^\s:,]{1,64}$/;
const SERIAL_NUM = /^[A-Za-z0-9_]{1,100}$/;

export class TopClient {
  private readonly signMethod: TopSignMethod;
  private readonly timeoutMs: number;
  private readonly clock: Clock;

  constructor(private readonly config: TopClientConfig) {
    this.signMethod = config.signMethod ?? 'md5';
    this.timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.clock = config.clock ?? systemClock;
    if (!(this.timeoutMs > 0)) throw new TopRequestError('timeoutMs', 'must be positive');
  }

  /** 发码成功回调: the codes issued for an order. */
  send(req: { orderId: string; verifyCodes: readonly VerifyCode[]; token: string; qrImages?: readonly string[] }) {
    return this.sendLike(TOP_API.send, req);
  }

  /** 重发回调 (also after a mobile change): ALL codes still usable. */
  resend(req: { orderId: string; verifyCodes: readonly VerifyCode[]; token: string; qrImages?: readonly string[] }) {
    return this.sendLike(TOP_API.resend, req);
  }

  /** 核销: `serialNum` must be reused unchanged when retrying an ambiguous consume. */
  async consume(req: {
    orderId: string;
    verifyCode: string;
    consumeNum: number;
    token: string;
    posid: string;
    serialNum: string;
    mobile?: string;
    newCode?: string;
    qrImages?: readonly string[];
  }): Promise<TopOutcome<ConsumeResponse>> {
    const outcome = await this.call(TOP_API.consume, {
      order_id: orderIdOf(req.orderId),
      verify_code: codeOf('verifyCode', req.verifyCode),
      consume_num: String(countOf('consumeNum', req.consumeNum)),
      token: required('token', req.token),
      posid: required('posid', req.posid),
      serial_num: serialOf('serialNum', req.serialNum),
      mobile: req.mobile,
      new_code: req.newCode === undefined ? undefined : codeOf('newCode', req.newCode),
      qr_images: req.qrImages?.join(','),
    });
    return mapOk(outcome, TOP_API.consume, (raw, retCode) => ({
      raw,
      requestId: str(raw['request_id']),
      retCode,
      leftNum: num(raw['left_num']),
      codeLeftNum: num(raw['code_left_num']),
      itemTitle: str(raw['item_title']),
      smsTpl: str(raw['sms_tpl']),
      printTpl: str(raw['print_tpl']),
      consumeSerialNum: str(raw['consume_secial_num'] ?? raw['consume_serial_num']),
    }));
  }

  /** 冲正: undo a consume by its serial number and the same count. */
  async reverse(req: {
    orderId: string;
    reverseCode: string;
    reverseNum: number;
    consumeSerialNum: string;
    token: string;
    posid: string;
    verifyCodes?: readonly VerifyCode[];
    qrImages?: readonly string[];
  }): Promise<TopOutcome<ReverseResponse>> {
    const outcome = await this.call(TOP_API.reverse, {
      order_id: orderIdOf(req.orderId),
      reverse_code: codeOf('reverseCode', req.reverseCode),
      reverse_num: String(countOf('reverseNum', req.reverseNum)),
      consume_secial_num: serialOf('consumeSerialNum', req.consumeSerialNum), // (sic) Taobao's spelling
      token: required('token', req.token),
      posid: required('posid', req.posid),
      verify_codes: req.verifyCodes === undefined ? undefined : verifyCodesOf(req.verifyCodes),
      qr_images: req.qrImages?.join(','),
    });
    return mapOk(outcome, TOP_API.reverse, (raw, retCode) => ({
      raw,
      requestId: str(raw['request_id']),
      retCode,
      leftNum: num(raw['left_num']),
      itemTitle: str(raw['item_title']),
    }));
  }

  /** 验码前置确认: may this code be consumed now, and how many units are left. */
  async beforeConsume(req: {
    orderId: string;
    verifyCode: string;
    token: string;
    posid: string;
    mobile?: string;
  }): Promise<TopOutcome<BeforeConsumeResponse>> {
    const outcome = await this.call(TOP_API.beforeConsume, {
      order_id: orderIdOf(req.orderId),
      verify_code: codeOf('verifyCode', req.verifyCode),
      token: required('token', req.token),
      posid: required('posid', req.posid),
      mobile: req.mobile,
    });
    if (outcome.kind !== 'ok') return outcome;
    const raw = outcome.body;
    const retCode = num(raw['ret_code']);
    if (retCode === undefined) return badResponse(TOP_API.beforeConsume, 'ret_code missing');
    return {
      kind: 'ok',
      body: {
        raw,
        requestId: str(raw['request_id']),
        retCode,
        consumable: retCode === 1,
        validStart: timeOf(raw['valid_start']),
        validEnd: timeOf(raw['valid_ends']),
        leftNum: num(raw['left_num']),
        codeLeftNum: num(raw['code_left_num']),
        itemTitle: str(raw['item_title']),
      },
    };
  }

  /** 无法发码回调: the supplier refused for good. */
  async failSend(req: { orderId: string; errorCode: number; errorMsg?: string; token: string }) {
    if (!Number.isSafeInteger(req.errorCode)) throw new TopRequestError('errorCode', 'must be an integer');
    const outcome = await this.call(TOP_API.failSend, {
      order_id: orderIdOf(req.orderId),
      error_code: String(req.errorCode),
      error_msg: req.errorMsg,
      token: required('token', req.token),
    });
    return mapOk(outcome, TOP_API.failSend, retCodeBody);
  }

  /** The codes Taobao holds for an order (reconciliation). */
  async codesGet(req: { orderId: string }): Promise<TopOutcome<CodesGetResponse>> {
    const outcome = await this.call(TOP_API.codesGet, { order_id: orderIdOf(req.orderId) });
    if (outcome.kind !== 'ok') return outcome;
    const raw = outcome.body;
    const list = raw['eticket_codes'];
    // TOP JSON wraps lists as {"eticket_codes":{"eticket_code":[...]}}; the simplified format is a bare array.
    const items: unknown[] = Array.isArray(list)
      ? list
      : isRecord(list) && Array.isArray(list['eticket_code'])
        ? (list['eticket_code'] as unknown[])
        : [];
    const codes: EticketCode[] = [];
    for (const item of items) {
      if (!isRecord(item)) continue;
      const code = str(item['code']);
      const n = num(item['num']);
      if (code === undefined || n === undefined) return badResponse(TOP_API.codesGet, 'eticket code without code/num');
      codes.push({ code, num: n, status: num(item['status']), qrcodeUrl: str(item['qrcode_url']) });
    }
    return {
      kind: 'ok',
      body: { raw, requestId: str(raw['request_id']), codes, totalResults: num(raw['total_results']) ?? codes.length },
    };
  }

  /** Uploads a QR image (multipart); the returned file name goes into `qr_images` of send/resend/consume. */
  async qrcodeUpload(bytes: Uint8Array, fileName = 'qrcode.png'): Promise<TopOutcome<QrcodeUploadResponse>> {
    if (bytes.length === 0 || bytes.length >= MAX_QR_BYTES) {
      throw new TopRequestError('imgBytes', 'image must be non-empty and under 300 KB');
    }
    const outcome = await this.call(
      TOP_API.qrcodeUpload,
      { code_merchant_id: this.config.codemerchantId },
      { img_bytes: { bytes, fileName } },
    );
    if (outcome.kind !== 'ok') return outcome;
    const retCode = num(outcome.body['ret_code']);
    const imgFilename = str(outcome.body['img_filename']);
    if (retCode !== 1 || !imgFilename) return retCodeFailure(TOP_API.qrcodeUpload, retCode);
    return { kind: 'ok', body: { raw: outcome.body, requestId: str(outcome.body['request_id']), retCode, imgFilename } };
  }

  private async sendLike(
    apiMethod: string,
    req: { orderId: string; verifyCodes: readonly VerifyCode[]; token: string; qrImages?: readonly string[] },
  ): Promise<TopOutcome<RetCodeResponse>> {
    if (req.qrImages && req.qrImages.length !== req.verifyCodes.length) {
      throw new TopRequestError('qrImages', 'must align one to one with verifyCodes');
    }
    const outcome = await this.call(apiMethod, {
      order_id: orderIdOf(req.orderId),
      verify_codes: verifyCodesOf(req.verifyCodes),
      token: required('token', req.token),
      qr_images: req.qrImages?.join(','),
    });
    return mapOk(outcome, apiMethod, retCodeBody);
  }

  /**
   * One signed call. `codemerchant_id` is added to every e-voucher call except qrcode.upload, which names
   * the same thing `code_merchant_id`. Returns the `<api>_response` object on success.
   */
  async call(
    apiMethod: string,
    businessParams: Readonly<Record<string, string | undefined>>,
    files: Readonly<Record<string, { bytes: Uint8Array; fileName: string }>> = {},
  ): Promise<TopOutcome<Record<string, unknown>>> {
    const params: Record<string, string> = {
      method: apiMethod,
      app_key: this.config.appKey,
      session: this.config.session,
      timestamp: formatTaobaoTime(this.clock.now()),
      format: 'json',
      v: '2.0',
      sign_method: this.signMethod,
    };
    if (apiMethod !== TOP_API.qrcodeUpload) params['codemerchant_id'] = this.config.codemerchantId;
    for (const [k, v] of Object.entries(businessParams)) if (v !== undefined && v !== '') params[k] = v;
    params['sign'] = signTopRequest(params, this.config.appSecret, this.signMethod);

    let body: URLSearchParams | FormData;
    let contentType: string | undefined;
    if (Object.keys(files).length === 0) {
      body = new URLSearchParams(params);
      contentType = 'application/x-www-form-urlencoded;charset=utf-8';
    } else {
      const form = new FormData();
      for (const [k, v] of Object.entries(params)) form.append(k, v);
      for (const [k, f] of Object.entries(files)) form.append(k, new Blob([f.bytes]), f.fileName);
      body = form; // fetch sets the multipart boundary itself
    }

    let status: number;
    let text: string;
    try {
      const res = await fetch(this.config.routerUrl, {
        method: 'POST',
        body,
        headers: contentType ? { 'content-type': contentType } : {},
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      return transportFailure(e, this.timeoutMs);
    }
    return interpret(apiMethod, status, text);
  }
}

// ---------------------------------------------------------------------------------------------

function interpret(apiMethod: string, status: number, text: string): TopOutcome<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (isRecord(json) && isRecord(json['error_response'])) {
    const err = json['error_response'];
    const code = err['code'] === undefined ? 'UNKNOWN' : String(err['code']);
    const subCode = str(err['sub_code']);
    const message = [str(err['msg']), str(err['sub_msg'])].filter(Boolean).join(': ') || 'TOP error';
    const kind = classifyTopError(apiMethod, num(err['code']), subCode);
    switch (kind) {
      case 'already_done':
        return { kind, code, subCode: subCode ?? '', message };
      case 'retryable':
        return { kind, code, subCode, message, ambiguous: false };
      case 'terminal':
        return { kind, code, subCode, message };
    }
  }
  if (status !== 200) {
    const kind = classifyHttpStatus(status);
    const message = `TOP router answered HTTP ${status}`;
    // A 5xx may come from a proxy after Taobao acted: treat as ambiguous.
    return kind === 'retryable'
      ? { kind, code: `HTTP_${status}`, message, ambiguous: status >= 500 }
      : { kind: 'terminal', code: `HTTP_${status}`, message };
  }
  const root = responseRoot(apiMethod);
  if (isRecord(json) && isRecord(json[root])) return { kind: 'ok', body: json[root] };
  // 200 without either envelope: most likely an error page in between; we cannot know whether it acted.
  return { kind: 'retryable', code: 'BAD_RESPONSE', message: `no ${root} in TOP answer`, ambiguous: true };
}

function transportFailure(e: unknown, timeoutMs: number): TopOutcome<never> {
  const name = (e as { name?: string } | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return { kind: 'retryable', code: 'TIMEOUT', message: `no answer within ${timeoutMs} ms`, ambiguous: true };
  }
  const cause = (e as { cause?: { code?: string } } | undefined)?.cause;
  const errno = cause?.code ?? 'NETWORK';
  // Refused or unresolvable: the request never left us. Anything else may have reached Taobao.
  const neverSent = errno === 'ECONNREFUSED' || errno === 'ENOTFOUND' || errno === 'EAI_AGAIN';
  return { kind: 'retryable', code: 'NETWORK', subCode: errno, message: `network error ${errno}`, ambiguous: !neverSent };
}

/** `taobao.vmarket.eticket.send` -> `vmarket_eticket_send_response`. */
export function responseRoot(apiMethod: string): string {
  return apiMethod.replace(/^taobao\./, '').replace(/\./g, '_') + '_response';
}

function mapOk<B extends RetCodeResponse>(
  outcome: TopOutcome<Record<string, unknown>>,
  apiMethod: string,
  build: (raw: Record<string, unknown>, retCode: number) => B,
): TopOutcome<B> {
  if (outcome.kind !== 'ok') return outcome;
  const retCode = num(outcome.body['ret_code']);
  // ret_code 1 is success; 0 or absent in a success envelope is a failure nobody explained.
  if (retCode !== 1) return retCodeFailure(apiMethod, retCode);
  return { kind: 'ok', body: build(outcome.body, retCode) };
}

function retCodeBody(raw: Record<string, unknown>, retCode: number): RetCodeResponse {
  return { raw, requestId: str(raw['request_id']), retCode };
}

function retCodeFailure(apiMethod: string, retCode: number | undefined): TopOutcome<never> {
  return retCode === undefined
    ? badResponse(apiMethod, 'ret_code missing')
    : { kind: 'terminal', code: `RET_CODE_${retCode}`, message: `${apiMethod} answered ret_code ${retCode}` };
}

function badResponse(apiMethod: string, why: string): TopOutcome<never> {
  return { kind: 'terminal', code: 'BAD_RESPONSE', message: `${apiMethod}: ${why}` };
}

function verifyCodesOf(codes: readonly VerifyCode[]): string {
  if (codes.length === 0) throw new TopRequestError('verifyCodes', 'at least one code');
  return codes.map((c) => `${codeOf('verifyCodes.code', c.code)}:${countOf('verifyCodes.num', c.num)}`).join(',');
}

function orderIdOf(orderId: string): string {
  if (!ORDER_ID.test(orderId)) throw new TopRequestError('orderId', 'must be a numeric Taobao order id');
  return orderId;
}

function codeOf(field: string, code: string): string {
  if (!VERIFY_CODE.test(code)) throw new TopRequestError(field, 'must be 1-64 characters without spaces, : or ,');
  return code;
}

function countOf(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new TopRequestError(field, 'must be a positive integer');
  return n;
}

function serialOf(field: string, serial: string): string {
  if (!SERIAL_NUM.test(serial)) throw new TopRequestError(field, 'must be 1-100 characters of [A-Za-z0-9_]');
  return serial;
}

function required(field: string, value: string): string {
  if (!value) throw new TopRequestError(field, 'is required');
  return value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

function timeOf(v: unknown): number | undefined {
  return typeof v === 'string' ? parseTaobaoTime(v) : undefined;
}
