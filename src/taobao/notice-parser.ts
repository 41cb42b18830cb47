/**
 * Inbound Taobao e-voucher notices: body decoding, signature/timestamp checks and typed fields.
 * Pure functions only - the HTTP route, persistence and the work queue live elsewhere.
 *
 * What the route is expected to do with the results:
 *   parseNoticeBody -> validateNotice -> (ok) store durably under dedupKey, answer NOTICE_ACK.ok
 *                                      -> (rejection) answer rejection.httpStatus + rejection.body
 */
import { createHash } from 'node:crypto';
import iconv from 'iconv-lite';
import type { ValidityWindow } from '../domain/model';
import { ordinal, verifyNoticeSignature } from './notice-signature';
import { parseTaobaoTime, taobaoDay } from './taobao-time';

/** Bodies Taobao understands. Anything but `{"code":200}` (or 300 on a resend with new codes) makes it retry. */
export const NOTICE_ACK = {
  ok: '{"code":200}',
  /** resend answered with codes different from the ones sent before. */
  resendCodesChanged: '{"code":300}',
  badSign: '{"code":501}',
} as const;

/** A future timestamp beyond this is a clock problem or a forgery (TOP itself allows ±10 min). */
export const DEFAULT_MAX_SKEW_MS = 10 * 60 * 1000;
/**
 * How old a notice may be. Taobao repeats a notice until we acknowledge it, and may keep the original
 * timestamp on those repeats, so a tight window would turn our own outage into notices rejected forever.
 * A day covers any outage we expect to ride out; anything older is an operator matter (Taobao lists such
 * orders in `taobao.vmarket.eticket.tasks.get`). The signature already proves the notice came from Taobao;
 * the age limit only bounds replays, so the dedup store must keep keys at least maxAgeMs + maxSkewMs.
 */
export const DEFAULT_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** Upper bounds so a hostile body cannot make us work without limit. */
const MAX_BODY_BYTES = 256 * 1024;
const MAX_PARAMS = 200;

export type NoticeRejectionReason =
  | 'BAD_SIGN'
  | 'STALE_TIMESTAMP'
  | 'MALFORMED_TIMESTAMP'
  | 'MISSING_FIELD'
  | 'UNKNOWN_METHOD'
  | 'INVALID_FIELD';

/** A refusal to hand back to Taobao. `body` is the exact JSON text to answer; it never carries a field's value. */
export interface NoticeRejection<R extends string = NoticeRejectionReason> {
  readonly ok: false;
  readonly httpStatus: number;
  readonly body: string;
  readonly reason: R;
  /** Safe to log: names fields, never echoes their values. */
  readonly message: string;
  readonly field?: string;
}

export type NoticeCharset = 'gbk' | 'gb18030' | 'utf-8';

export type ParsedNoticeBody =
  | { readonly ok: true; readonly params: Record<string, string>; readonly charset: NoticeCharset }
  | NoticeRejection<'MALFORMED_BODY'>;

// ---------------------------------------------------------------------------------------------
// Typed notices

/** How the buyer is reached. `type` on the wire: 0 = clear mobile, we send the SMS; 1 = Taobao sends it and
 *  gives us only a masked mobile + its md5; 2 = Taobao-internal. */
export interface BuyerContact {
  readonly noticeType: 0 | 1 | 2;
  readonly mobile?: string;
  readonly encryptMobile?: string;
  readonly md5Mobile?: string;
}

interface NoticeBase {
  readonly orderId: string;
  /** The notice's own `timestamp`, epoch ms. */
  readonly timestamp: number;
}

/** 发码通知: a paid order, please issue codes. */
export interface SendNotice extends NoticeBase, BuyerContact {
  readonly method: 'send';
  readonly token: string;
  readonly num: number;
  readonly numIid?: string;
  readonly outerIid?: string;
  /** SKU merchant code: what usually maps to the supplier's ticket type. */
  readonly subOuterIid?: string;
  readonly itemTitle?: string;
  readonly skuProperties?: string;
  /** `taobao_sid`. */
  readonly sellerId?: string;
  readonly sellerNick?: string;
  /** 0 QR code, 1 matrix code, 2 verification code (default). */
  readonly sendType: 0 | 1 | 2;
  /** 0 unrestricted (default), 1 one code one entry, 2 one code several entries. */
  readonly consumeType: 0 | 1 | 2;
  readonly smsTemplate?: string;
  /** Validity, epoch ms to the second, both ends inclusive; both present or both absent. */
  readonly validStart?: number;
  readonly validEnd?: number;
  readonly totalFeeFen?: number;
  /** md5 of the buyer's ID-card number (lower-case hex), as Taobao sends it. */
  readonly idCardMd5?: string;
  /** ISO weekdays (1 = Monday ... 7 = Sunday) the code may be used on. */
  readonly weeks?: readonly number[];
}

/** 重新发码通知: the buyer asked for the codes again (at most once a day). */
export interface ResendNotice extends NoticeBase, BuyerContact {
  readonly method: 'resend';
  readonly token: string;
  /** Units still usable; 0 is passed through (the caller decides), never rejected - Taobao would retry forever. */
  readonly leftNum: number;
}

/** 修改手机通知: the buyer changed the mobile; resend to the new one. */
export interface ModifiedNotice extends NoticeBase, BuyerContact {
  readonly method: 'modified';
  readonly token: string;
  readonly leftNum: number;
}

/** 退款成功通知: Taobao refunded `cancelNum` units; void them at the supplier. */
export interface CancelNotice extends NoticeBase {
  readonly method: 'cancel';
  readonly token: string;
  readonly cancelNum: number;
}

/** 订单修改通知: 1 = validity changed (only extension is allowed), 2 = rights protection succeeded. */
export type OrderModifyNotice = NoticeBase & {
  readonly method: 'order_modify';
  readonly token?: string;
} & (
    | { readonly subMethod: 1; readonly validity: ValidityWindow }
    | { readonly subMethod: 2; readonly data?: string }
  );

export type TaobaoNotice = SendNotice | ResendNotice | ModifiedNotice | CancelNotice | OrderModifyNotice;
export type TaobaoNoticeMethod = TaobaoNotice['method'];
export const NOTICE_METHODS: readonly TaobaoNoticeMethod[] = ['send', 'resend', 'modified', 'cancel', 'order_modify'];

export interface ValidateNoticeOptions {
  /** The notice key; several while rotating keys (any one matching is enough). */
  readonly noticeKey: string | readonly string[];
  readonly now: number;
  /** How far in the future a timestamp may be. Default 10 min. */
  readonly maxSkewMs?: number;
  /** How old a timestamp may be. Default 24 h (see DEFAULT_MAX_AGE_MS). */
  readonly maxAgeMs?: number;
}

export type ValidatedNotice = { readonly ok: true; readonly notice: TaobaoNotice } | NoticeRejection;

// ---------------------------------------------------------------------------------------------
// Body decoding

/**
 * Decodes a form-encoded notice body. Percent-escapes are turned into bytes first and only then decoded,
 * because Taobao escapes GBK bytes: decoding escape by escape as UTF-8 would mangle every Chinese value.
 * GBK unless the content type says otherwise.
 */
export function parseNoticeBody(raw: Buffer, contentType: string | undefined): ParsedNoticeBody {
  const ct = parseContentType(contentType);
  if (ct.mediaType !== '' && ct.mediaType !== 'application/x-www-form-urlencoded') {
    return malformed(415, 'content type must be application/x-www-form-urlencoded');
  }
  const charset = charsetOf(ct.charset);
  if (!charset) return malformed(415, 'unsupported charset (GBK or UTF-8 expected)');
  if (raw.length > MAX_BODY_BYTES) return malformed(413, 'notice body too large');

  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  let start = 0;
  while (start <= raw.length) {
    let end = raw.indexOf(0x26 /* & */, start);
    if (end < 0) end = raw.length;
    if (end > start) {
      if (++count > MAX_PARAMS) return malformed(413, 'too many parameters');
      const pair = raw.subarray(start, end);
      const eq = pair.indexOf(0x3d /* = */);
      const keyBytes = percentDecode(eq < 0 ? pair : pair.subarray(0, eq));
      const valueBytes = percentDecode(eq < 0 ? Buffer.alloc(0) : pair.subarray(eq + 1));
      if (!keyBytes || !valueBytes) return malformed(400, 'malformed percent-encoding');
      const key = keyBytes.toString('latin1');
      if (!/^[A-Za-z0-9_.]{1,64}$/.test(key)) return malformed(400, 'malformed parameter name');
      const value = decodeText(valueBytes, charset);
      if (value === undefined) return malformed(400, `parameter ${key} is not valid ${charset}`);
      if (Object.prototype.hasOwnProperty.call(params, key)) {
        // Two values for one name: which one was signed is ambiguous, so take neither.
        return malformed(400, `parameter ${key} appears twice`);
      }
      params[key] = value;
    }
    start = end + 1;
  }
  return { ok: true, params, charset };
}

function malformed(httpStatus: number, message: string): NoticeRejection<'MALFORMED_BODY'> {
  return {
    ok: false,
    httpStatus,
    reason: 'MALFORMED_BODY',
    message,
    body: JSON.stringify({ code: httpStatus, reason: 'MALFORMED_BODY', message }),
  };
}

function parseContentType(contentType: string | undefined): { mediaType: string; charset?: string } {
  if (!contentType) return { mediaType: '' };
  const [media, ...rest] = contentType.split(';');
  let charset: string | undefined;
  for (const part of rest) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim().toLowerCase() === 'charset') {
      charset = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    }
  }
  return { mediaType: (media ?? '').trim().toLowerCase(), charset };
}

function charsetOf(declared: string | undefined): NoticeCharset | undefined {
  if (declared === undefined || declared === '') return 'gbk';
  switch (declared) {
    case 'gbk':
    case 'gb2312':
    case 'cp936':
    case 'x-gbk':
      return 'gbk';
    case 'gb18030':
      return 'gb18030';
    case 'utf-8':
    case 'utf8':
      return 'utf-8';
    default:
      return undefined;
  }
}

/** `%XX` -> byte, `+` -> space, other bytes as they are; undefined on a broken escape. */
function percentDecode(bytes: Buffer): Buffer | undefined {
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x2b /* + */) {
      out[n++] = 0x20;
    } else if (b === 0x25 /* % */) {
      const hi = hexValue(bytes[i + 1]);
      const lo = hexValue(bytes[i + 2]);
      if (hi < 0 || lo < 0) return undefined;
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

function decodeText(bytes: Buffer, charset: NoticeCharset): string | undefined {
  if (charset === 'utf-8') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return undefined;
    }
  }
  const text = iconv.decode(bytes, charset);
  // iconv-lite substitutes U+FFFD for byte sequences GBK does not have; GBK itself cannot encode U+FFFD.
  return text.includes('\uFFFD') ? undefined : text;
}

// ---------------------------------------------------------------------------------------------
// Validation

/** Internal signal from the field readers; turned into a NoticeRejection at the boundary. */
class FieldProblem extends Error {
  constructor(
    readonly reason: 'MISSING_FIELD' | 'INVALID_FIELD',
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${reason} ${field}`);
  }
}

/**
 * Checks signature, method, timestamp and every field, and returns a typed notice or a rejection.
 * Signature first: nothing about an unsigned notice is worth telling the sender.
 */
export function validateNotice(params: Readonly<Record<string, string>>, options: ValidateNoticeOptions): ValidatedNotice {
  const keys = typeof options.noticeKey === 'string' ? [options.noticeKey] : options.noticeKey;
  if (!keys.some((key) => key !== '' && verifyNoticeSignature(params, key))) {
    const message = params['sign'] ? 'notice signature does not match' : 'notice is not signed';
    return { ok: false, httpStatus: 200, body: NOTICE_ACK.badSign, reason: 'BAD_SIGN', message };
  }

  const method = params['method'];
  if (!method) return rejection('MISSING_FIELD', 'method is missing', 'method');
  if (!(NOTICE_METHODS as readonly string[]).includes(method)) {
    const shown = /^[A-Za-z_.]{1,40}$/.test(method) ? ` '${method}'` : '';
    return rejection('UNKNOWN_METHOD', `unknown notice method${shown}`, 'method');
  }

  const rawTimestamp = params['timestamp'];
  if (!rawTimestamp) return rejection('MISSING_FIELD', 'timestamp is missing', 'timestamp');
  const timestamp = parseTaobaoTime(rawTimestamp);
  if (timestamp === undefined) {
    return rejection('MALFORMED_TIMESTAMP', 'timestamp is not yyyy-MM-dd HH:mm:ss', 'timestamp');
  }
  const maxSkew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const maxAge = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  if (timestamp > options.now + maxSkew) {
    return rejection('STALE_TIMESTAMP', `timestamp is more than ${maxSkew} ms in the future`, 'timestamp');
  }
  if (timestamp < options.now - maxAge) {
    return rejection('STALE_TIMESTAMP', `timestamp is more than ${maxAge} ms old`, 'timestamp');
  }

  try {
    return { ok: true, notice: readNotice(method as TaobaoNoticeMethod, new FieldReader(params), timestamp) };
  } catch (e) {
    if (e instanceof FieldProblem) {
      const what = e.reason === 'MISSING_FIELD' ? 'is missing' : `is invalid (expected ${e.expected})`;
      return rejection(e.reason, `${e.field} ${what}`, e.field);
    }
    throw e;
  }
}

function rejection(reason: Exclude<NoticeRejectionReason, 'BAD_SIGN'>, message: string, field?: string): NoticeRejection {
  return {
    ok: false,
    httpStatus: 400,
    reason,
    message,
    field,
    body: JSON.stringify({ code: 400, reason, field, message }),
  };
}

function readNotice(method: TaobaoNoticeMethod, r: FieldReader, timestamp: number): TaobaoNotice {
  const orderId = r.required('order_id', ORDER_ID, 'a numeric order id');
  switch (method) {
    case 'send': {
      const validStart = r.time('valid_start');
      const validEnd = r.time('valid_ends');
      if ((validStart === undefined) !== (validEnd === undefined)) {
        throw new FieldProblem('MISSING_FIELD', validStart === undefined ? 'valid_start' : 'valid_ends', 'both ends');
      }
      if (validStart !== undefined && validEnd !== undefined && validEnd < validStart) {
        throw new FieldProblem('INVALID_FIELD', 'valid_ends', 'not before valid_start');
      }
      return {
        method,
        orderId,
        timestamp,
        token: r.required('token', TOKEN, 'a token'),
        num: r.count('num', 1),
        ...r.contact(true),
        numIid: r.optional('num_iid', DIGITS, 'digits'),
        outerIid: r.optional('outer_iid'),
        subOuterIid: r.optional('sub_outer_iid'),
        itemTitle: r.optional('item_title'),
        skuProperties: r.optional('sku_properties'),
        sellerId: r.optional('taobao_sid', DIGITS, 'digits'),
        sellerNick: r.optional('seller_nick'),
        sendType: r.enum012('send_type', 2),
        consumeType: r.enum012('consume_type', 0),
        smsTemplate: r.optional('sms_template'),
        validStart,
        validEnd,
        totalFeeFen: r.fen('total_fee'),
        idCardMd5: r.optional('id_card', MD5_HEX, '32 hex digits')?.toLowerCase(),
        weeks: r.weeks('weeks'),
      };
    }
    case 'resend':
    case 'modified':
      return {
        method,
        orderId,
        timestamp,
        token: r.required('token', TOKEN, 'a token'),
        leftNum: r.count('left_num', 0),
        // The whole point of `modified` is the new number: one form of it must be there.
        ...r.contact(method === 'modified'),
      };
    case 'cancel':
      return {
        method,
        orderId,
        timestamp,
        token: r.required('token', TOKEN, 'a token'),
        cancelNum: r.count('cancel_num', 1),
      };
    case 'order_modify': {
      const token = r.optional('token', TOKEN, 'a token');
      const subMethod = r.required('sub_method');
      if (subMethod === '1') {
        return { method, orderId, timestamp, token, subMethod: 1, validity: r.validityData('data') };
      }
      if (subMethod === '2') return { method, orderId, timestamp, token, subMethod: 2, data: r.optional('data') };
      throw new FieldProblem('INVALID_FIELD', 'sub_method', '1 or 2');
    }
  }
}

const ORDER_ID = /^[1-9]\d{0,19}$/;
const DIGITS = /^\d{1,30}$/;
const TOKEN = /^[\x21-\x7e]{1,128}$/;
const MD5_HEX = /^[0-9A-Fa-f]{32}$/;
const MOBILE = /^\+?\d{6,20}$/;
const MASKED_MOBILE = /^[\d*]{6,20}$/;
const YUAN = /^(0|[1-9]\d{0,11})(?:\.(\d{1,2}))?$/;

/**
 * The longest value each stored field may have: the order row's column sizes (OrderEntity). A longer value is a
 * clear 400 naming the field - MariaDB would refuse the row (a 500, so Taobao retries forever) and SQLite would
 * keep what MariaDB cannot.
 */
const MAX_LENGTH: Readonly<Record<string, number>> = {
  token: 64,
  num_iid: 32,
  outer_iid: 64,
  sub_outer_iid: 64,
  item_title: 255,
  sku_properties: 500,
  taobao_sid: 32,
  seller_nick: 64,
  mobile: 20,
  encrypt_mobile: 20,
};

class FieldReader {
  constructor(private readonly params: Readonly<Record<string, string>>) {}

  optional(name: string, pattern?: RegExp, expected = ''): string | undefined {
    const v = this.params[name];
    if (v === undefined || v === '') return undefined;
    const max = MAX_LENGTH[name];
    if (max !== undefined && v.length > max) throw new FieldProblem('INVALID_FIELD', name, `at most ${max} characters`);
    if (pattern && !pattern.test(v)) throw new FieldProblem('INVALID_FIELD', name, expected);
    return v;
  }

  required(name: string, pattern?: RegExp, expected = ''): string {
    const v = this.optional(name, pattern, expected);
    if (v === undefined) throw new FieldProblem('MISSING_FIELD', name, expected);
    return v;
  }

  /** A whole count, at least `min`. */
  count(name: string, min: 0 | 1): number {
    const v = this.required(name, /^\d{1,9}$/, min === 1 ? 'a positive integer' : 'a non-negative integer');
    const n = Number(v);
    if (n < min) throw new FieldProblem('INVALID_FIELD', name, min === 1 ? 'a positive integer' : 'a non-negative integer');
    return n;
  }

  enum012(name: string, fallback: 0 | 1 | 2): 0 | 1 | 2 {
    const v = this.optional(name, /^[012]$/, '0, 1 or 2');
    return v === undefined ? fallback : (Number(v) as 0 | 1 | 2);
  }

  time(name: string): number | undefined {
    const v = this.optional(name);
    if (v === undefined) return undefined;
    const t = parseTaobaoTime(v);
    if (t === undefined) throw new FieldProblem('INVALID_FIELD', name, 'yyyy-MM-dd HH:mm:ss');
    return t;
  }

  /** Yuan with at most two decimals -> integer fen, by string arithmetic (no float rounding). */
  fen(name: string): number | undefined {
    const v = this.optional(name);
    if (v === undefined) return undefined;
    const m = YUAN.exec(v);
    if (!m) throw new FieldProblem('INVALID_FIELD', name, 'yuan with at most 2 decimals');
    return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
  }

  weeks(name: string): number[] | undefined {
    const v = this.optional(name);
    if (v === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      parsed = undefined;
    }
    if (
      !Array.isArray(parsed) ||
      parsed.length === 0 ||
      parsed.length > 7 ||
      !parsed.every((d) => Number.isInteger(d) && d >= 1 && d <= 7) ||
      new Set(parsed).size !== parsed.length
    ) {
      throw new FieldProblem('INVALID_FIELD', name, 'a JSON list of weekdays 1-7');
    }
    return parsed as number[];
  }

  /** `type` with its mobile fields; `required` demands the number in the form type 0 or 1 promises. */
  contact(required: boolean): BuyerContact {
    const noticeType = this.enum012('type', 0);
    const mobile = this.optional('mobile', MOBILE, 'digits');
    const encryptMobile = this.optional('encrypt_mobile', MASKED_MOBILE, 'a masked mobile');
    const md5Mobile = this.optional('md5_mobile', MD5_HEX, '32 hex digits')?.toLowerCase();
    if (required) {
      if (noticeType === 1) {
        if (!encryptMobile) throw new FieldProblem('MISSING_FIELD', 'encrypt_mobile', 'a masked mobile');
        if (!md5Mobile) throw new FieldProblem('MISSING_FIELD', 'md5_mobile', '32 hex digits');
      } else if (noticeType === 0 && !mobile) {
        throw new FieldProblem('MISSING_FIELD', 'mobile', 'digits');
      }
      // type 2 (Taobao-internal) is poorly documented: take whatever contact it carries, demand none.
    }
    return { noticeType, mobile, encryptMobile, md5Mobile };
  }

  /** `data` of order_modify sub_method 1: `{"valid_start":..,"valid_ends":..}`, Taobao time text or epoch ms. */
  validityData(name: string): ValidityWindow {
    const v = this.required(name, undefined, 'JSON with valid_start and valid_ends');
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      throw new FieldProblem('INVALID_FIELD', name, 'JSON with valid_start and valid_ends');
    }
    const obj = (parsed ?? {}) as Record<string, unknown>;
    const start = instantOf(obj['valid_start']);
    const end = instantOf(obj['valid_ends']);
    if (start === undefined || end === undefined || end < start) {
      throw new FieldProblem('INVALID_FIELD', name, 'JSON with valid_start <= valid_ends');
    }
    return { start, end };
  }
}

function instantOf(v: unknown): number | undefined {
  if (typeof v === 'string') return parseTaobaoTime(v);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Deduplication

/**
 * The key under which a notice is recorded once. Taobao repeats a notice until acknowledged, and a repeat
 * may carry a new timestamp and sign, so the key hashes the signed parameters *without* `timestamp`/`sign`.
 * That alone would wrongly merge two genuine events with equal fields, so some methods add time back in:
 *
 *  - send, cancel, order_modify: content only. One send per order; a cancel carries its own count and an
 *    order_modify its own data. Caveat for the lead: if two partial refunds of one order ever arrive with
 *    the same `cancel_num` and nothing else differing, they share a key (the docs do not say whether
 *    cancel_num is per refund or cumulative) - reconcile refunds against Taobao if that is ever seen.
 *  - resend: content + the GMT+8 day of the timestamp. A buyer may resend at most once a day, so a resend
 *    on another day is a new event, while repeats within the day merge.
 *  - modified: content + the exact timestamp. Changing A -> B -> A must not merge the third notice into the
 *    first; a re-stamped repeat then costs at most one extra resend to the same number, which is harmless.
 *
 * Shape: `<method>:<order_id>[:<day|epoch ms>]:<32 hex>`, at most 100 characters, no personal data in clear.
 */
export function dedupKey(notice: TaobaoNotice, params: Readonly<Record<string, string>>): string {
  const canonical = Object.keys(params)
    .filter((k) => k !== 'sign' && k !== 'timestamp' && params[k] !== '')
    .sort(ordinal)
    .map((k) => `${k}=${JSON.stringify(params[k])}`)
    .join('\n');
  const hash = createHash('sha256').update(canonical, 'utf8').digest('hex').slice(0, 32);
  switch (notice.method) {
    case 'resend':
      return `resend:${notice.orderId}:${taobaoDay(notice.timestamp)}:${hash}`;
    case 'modified':
      return `modified:${notice.orderId}:${notice.timestamp}:${hash}`;
    default:
      return `${notice.method}:${notice.orderId}:${hash}`;
  }
}
