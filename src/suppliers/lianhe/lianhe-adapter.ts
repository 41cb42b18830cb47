/**
 * Lianhe (联合票务) open API. See external-apis.md §3.
 * JSON `{partnerId, body}` POSTed to `/openapi/index.php?method=…`, HMAC-SHA1 signed headers.
 * Refund outcomes arrive by `reNotify` after a back-office audit; there is no audit query by refund id.
 */
import { z } from 'zod';
import type { Clock, ValidityWindow } from '../../domain/model';
import { systemClock } from '../../domain/model';
import {
  type CallbackParseResult,
  type CallbackReply,
  type CallOptions,
  type CheckRecord,
  type InboundCallbackRequest,
  type IssuedVoucher,
  type PlaceOrderRequest,
  type PlaceOrderResult,
  type RefundAuditResult,
  type RefundRequest,
  type RefundRequestResult,
  type ResendOptions,
  type ResendResult,
  type SupplierAdapter,
  type SupplierCapabilities,
  type SupplierOrderRef,
  type SupplierOrderStatus,
  headerValue,
  requireCapability,
} from '../supplier-adapter';
import { SupplierCallError, SupplierConfigError, maskPersonalData } from '../supplier-errors';
import { fenToYuan, postToSupplier } from '../supplier-http';
import { lianheAuthorization, lianheSignature, rfc1123, verifyLianheAuthorization } from './lianhe-signature';
import { LianheStatusMapping, lianheStatusMappingSchema } from './lianhe-status';

export const LIANHE = 'lianhe';

/** Notifications are signed with this uri, whatever URL they are delivered to. */
export const LIANHE_NOTIFY_URI = '/openapi/index.php?method=notify';

export const lianheConfigSchema = z.object({
  instanceCode: z.string().min(1).default(LIANHE),
  /** Origin only, e.g. http://www.lianhepiaowu.net ; the uri /openapi/index.php?method=… is appended. */
  baseUrl: z.url(),
  partnerId: z.number().int().positive(),
  apiName: z.string().min(1),
  clientSecret: z.string().min(1),
  version: z.string().default('2.1'),
  timeoutMs: z.number().int().positive().default(10_000),
  /** 0: Lianhe sends the voucher SMS; 1: we (or Taobao) do. */
  smsFrom: z.union([z.literal(0), z.literal(1)]).default(0),
  /** Allowed clock skew of a notification's Date header. */
  callbackMaxSkewMs: z.number().int().positive().default(15 * 60_000),
  statusMapping: lianheStatusMappingSchema.default({ orderStatus: {} }),
});
export type LianheConfig = z.input<typeof lianheConfigSchema>;

/** Interaction codes: 10000/20000 documented; 200/300 seen in older examples. */
const SUCCESS_CODES = new Set([10000, 200]);
const FAILURE_CODES = new Set([20000, 300]);

const SUCCESS_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' };
const FAILURE_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'failure' };

type Json = Record<string, unknown>;

interface LianheReply {
  readonly code: number;
  readonly ok: boolean;
  readonly describe: string;
  readonly body: Json;
}

export class LianheAdapter implements SupplierAdapter {
  readonly code = LIANHE;
  readonly instanceCode: string;
  readonly capabilities: SupplierCapabilities = {
    partialRefund: true,
    validityChange: false,
    resendToNewMobile: false,
    qrImage: false,
    // cancelOrder is audited in Lianhe's back office; the outcome comes by reNotify (queryOrder reconciles).
    auditPolling: false,
    auditCallback: true,
    checkRecords: false,
  };
  private readonly config: z.output<typeof lianheConfigSchema>;
  /** This instance's orderStatus table (default + config); read by the state mapping for callbacks. */
  readonly statuses: LianheStatusMapping;

  constructor(
    config: LianheConfig,
    private readonly clock: Clock = systemClock,
  ) {
    const parsed = lianheConfigSchema.safeParse(config);
    if (!parsed.success) throw new SupplierConfigError(LIANHE, `invalid config: ${z.prettifyError(parsed.error)}`);
    this.config = parsed.data;
    this.instanceCode = parsed.data.instanceCode;
    this.statuses = new LianheStatusMapping(parsed.data.statusMapping);
  }

  async placeOrder(req: PlaceOrderRequest, opts: CallOptions = {}): Promise<PlaceOrderResult> {
    if (!Number.isSafeInteger(req.quantity) || req.quantity <= 0) throw new RangeError('quantity must be a positive integer');
    const visitors = req.idCards?.length
      ? req.idCards.map((c) => ({ name: c.name, mobile: req.mobile, credentials: c.id }))
      : [{ name: req.visitorName, mobile: req.mobile }];
    const reply = await this.call(
      'newOrder',
      {
        orderId: req.ourOrderCode,
        LHDealId: req.supplierTicketType,
        sellPrice: Number(fenToYuan(req.unitPriceFen)),
        quantity: req.quantity,
        travelDate: req.visitDate,
        // Our order code doubles as the payment id: stable across retries.
        payId: req.ourOrderCode,
        smsfrom: req.suppressSms ? 1 : this.config.smsFrom,
        visitor: visitors,
      },
      opts,
    );
    if (!reply.ok) {
      return { kind: 'rejected', permanent: true, supplierCode: String(reply.code), message: maskPersonalData(reply.describe || `code ${reply.code}`) };
    }
    const lhOrderId = scalarText(reply.body['LHOrderId']);
    const voucher = scalarText(reply.body['voucher']);
    if (!lhOrderId || !voucher) throw this.malformed('newOrder', 'success without LHOrderId or voucher');
    const orderStatus = scalarText(reply.body['orderStatus']);
    if (orderStatus !== undefined && this.statuses.lookup(orderStatus) === 'issue_failed') {
      return { kind: 'rejected', permanent: true, supplierCode: `orderStatus:${orderStatus}`, message: maskPersonalData(reply.describe) };
    }
    const voucherType = scalarText(reply.body['voucherType']);
    const issued: IssuedVoucher =
      voucherType === '1' && /^https?:\/\//.test(voucher)
        ? { code: voucher, quantity: req.quantity, qrUrl: voucher }
        : { code: voucher, quantity: req.quantity };
    return {
      kind: 'placed',
      supplierOrderId: lhOrderId,
      supplierSubOrderIds: [],
      vouchers: [issued],
      supplierState: orderStatus,
      alreadyExisted: false,
    };
  }

  /**
   * queryOrder: `orderQuantity` is what remains after refunds, `useQuantity` what was used; `reQuantity`
   * is read as refunded so far (as in reNotify) — inferred, the field table was not retrieved.
   */
  async queryOrder(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<SupplierOrderStatus> {
    const reply = await this.callOk('queryOrder', { orderId: ref.ourOrderCode, LHOrderId: ref.supplierOrderId }, opts);
    const orderStatus = scalarText(reply.body['orderStatus']);
    const remaining = nonNegativeInt(reply.body['orderQuantity']);
    const used = nonNegativeInt(reply.body['useQuantity']);
    const refunded = nonNegativeInt(reply.body['reQuantity']) ?? 0;
    if (orderStatus === undefined || remaining === undefined || used === undefined) {
      throw this.malformed('queryOrder', 'reply lacks orderStatus, orderQuantity or useQuantity');
    }
    return {
      supplierState: orderStatus,
      neutralStatus: this.statuses.require(orderStatus, 'queryOrder'),
      purchasedQuantity: remaining + refunded,
      usedQuantity: used,
      refundedQuantity: refunded,
      refundableQuantity: Math.max(0, remaining - used),
    };
  }

  async resendVoucher(ref: SupplierOrderRef, resend: ResendOptions = {}, opts: CallOptions = {}): Promise<ResendResult> {
    if (resend.newMobile !== undefined) requireCapability(this, 'resendToNewMobile');
    const reply = await this.callOk('send', { orderId: ref.ourOrderCode, LHOrderId: ref.supplierOrderId }, opts);
    const voucher = scalarText(reply.body['voucher']);
    return voucher ? { voucherCodes: [voucher] } : {};
  }

  async requestRefund(ref: SupplierOrderRef, refund: RefundRequest, opts: CallOptions = {}): Promise<RefundRequestResult> {
    if (!Number.isSafeInteger(refund.quantity) || refund.quantity <= 0) throw new RangeError('quantity must be a positive integer');
    const reply = await this.call(
      'cancelOrder',
      { orderId: ref.ourOrderCode, LHOrderId: ref.supplierOrderId, refundId: refund.refundId, quantity: refund.quantity },
      opts,
    );
    // Accepted means "waiting for Lianhe's back-office audit"; our refund id identifies it in reNotify.
    if (reply.ok) return { kind: 'pending_audit', batchNo: refund.refundId };
    const orderStatus = scalarText(reply.body['orderStatus']);
    const reStatus = scalarText(reply.body['reStatus']);
    return {
      kind: 'rejected',
      supplierCode: String(reply.code),
      message: maskPersonalData(`${reply.describe || `code ${reply.code}`}${reStatus ? ` (reStatus ${reStatus})` : ''}`),
      refundableQuantity: nonNegativeInt(reply.body['reQuantity']),
      supplierState: orderStatus,
      // The caller adopts this state, so an unknown code must stop here rather than be guessed.
      neutralStatus: orderStatus === undefined ? undefined : this.statuses.require(orderStatus, 'cancelOrder refusal'),
    };
  }

  async queryRefundAudit(_ref: SupplierOrderRef, _batchNo: string): Promise<RefundAuditResult> {
    requireCapability(this, 'auditPolling');
    throw new Error('unreachable');
  }

  async changeValidity(_ref: SupplierOrderRef, _window: ValidityWindow): Promise<void> {
    requireCapability(this, 'validityChange');
  }

  async queryQrImageUrl(_ref: SupplierOrderRef): Promise<string> {
    requireCapability(this, 'qrImage');
    throw new Error('unreachable');
  }

  async queryCheckRecords(_ref: SupplierOrderRef): Promise<readonly CheckRecord[]> {
    requireCapability(this, 'checkRecords');
    throw new Error('unreachable');
  }

  parseCallback(req: InboundCallbackRequest): CallbackParseResult {
    const reject = (reason: 'bad_signature' | 'malformed' | 'unknown_notice', message: string): CallbackParseResult => ({
      ok: false,
      reason,
      message,
      reply: FAILURE_REPLY,
    });
    const auth = verifyLianheAuthorization({
      clientSecret: this.config.clientSecret,
      method: 'POST',
      uri: LIANHE_NOTIFY_URI,
      authorization: headerValue(req.headers, 'authorization'),
      date: headerValue(req.headers, 'date'),
      now: this.clock.now(),
      maxSkewMs: this.config.callbackMaxSkewMs,
    });
    if (!auth.ok) return reject('bad_signature', `notification refused: ${auth.why}`);

    let msg: unknown;
    try {
      msg = JSON.parse(req.rawBody.toString('utf8'));
    } catch {
      return reject('malformed', 'notification is not JSON');
    }
    if (!isObject(msg) || !isObject(msg['body'])) return reject('malformed', 'notification lacks body');
    const body = msg['body'];
    const method = scalarText(msg['method']);
    const code = Number(msg['code']);
    const orderId = scalarText(body['orderId']);
    const lhOrderId = scalarText(body['LHOrderId']);
    if (!orderId && !lhOrderId) return reject('malformed', 'notification names no order');
    const orderStatus = scalarText(body['orderStatus']);

    if (method === 'snNotify') {
      const used = nonNegativeInt(body['usedQuantity']);
      if (used === undefined) return reject('malformed', 'snNotify lacks usedQuantity');
      return {
        ok: true,
        reply: SUCCESS_REPLY,
        callback: {
          type: 'admission',
          ourOrderCode: orderId,
          supplierOrderId: lhOrderId,
          totalUsed: used,
          supplierState: orderStatus,
          // usedQuantity is cumulative, so it is a natural idempotency key.
          dedupKey: `lianhe:sn:${lhOrderId ?? orderId}:${used}`,
        },
      };
    }
    if (method === 'reNotify') {
      if (!SUCCESS_CODES.has(code) && !FAILURE_CODES.has(code)) return reject('malformed', `reNotify with unknown code ${String(msg['code'])}`);
      const approved = SUCCESS_CODES.has(code);
      const cumulative = nonNegativeInt(body['reQuantity']);
      const reStatus = scalarText(body['reStatus']);
      const batchNo = scalarText(body['refundId']);
      return {
        ok: true,
        reply: SUCCESS_REPLY,
        callback: {
          type: 'refund_audit',
          ourOrderCode: orderId,
          supplierOrderId: lhOrderId,
          batchNo,
          approved,
          quantity: approved ? nonNegativeInt(body['quantity']) : undefined,
          cumulativeRefunded: approved ? cumulative : undefined,
          supplierState: orderStatus,
          reason: approved ? undefined : maskPersonalData(`${scalarText(msg['describe']) ?? 'rejected'}${reStatus ? ` (reStatus ${reStatus})` : ''}`),
          dedupKey: `lianhe:re:${lhOrderId ?? orderId}:${batchNo ?? ''}:${code}:${approved ? (cumulative ?? '') : (reStatus ?? '')}`,
        },
      };
    }
    return reject('unknown_notice', `unknown notification method '${method ?? ''}'`);
  }

  // --- wire ---

  private async call(method: string, body: Json, opts: CallOptions): Promise<LianheReply> {
    const uri = `/openapi/index.php?method=${method}`;
    const date = rfc1123(this.clock.now());
    const signature = lianheSignature(this.config.clientSecret, 'POST', uri, date);
    const res = await postToSupplier({
      supplier: LIANHE,
      operation: method,
      url: new URL(uri, this.config.baseUrl).toString(),
      headers: {
        'content-type': 'application/json; charset=utf-8',
        date,
        version: this.config.version,
        partnerid: String(this.config.partnerId),
        authorization: lianheAuthorization(this.config.apiName, signature),
      },
      body: JSON.stringify({ partnerId: this.config.partnerId, body }),
      timeoutMs: this.config.timeoutMs,
      signal: opts.signal,
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch (err) {
      throw this.malformed(method, 'reply is not JSON', err);
    }
    if (!isObject(parsed)) throw this.malformed(method, 'reply is not a JSON object');
    const code = Number(parsed['code']);
    const ok = SUCCESS_CODES.has(code);
    if (!ok && !FAILURE_CODES.has(code)) throw this.malformed(method, `unknown interaction code ${String(parsed['code'])}`);
    const replyBody = parsed['body'];
    if (ok && !isObject(replyBody)) throw this.malformed(method, 'success without body');
    return { code, ok, describe: scalarText(parsed['describe']) ?? '', body: isObject(replyBody) ? replyBody : {} };
  }

  private async callOk(method: string, body: Json, opts: CallOptions): Promise<LianheReply> {
    const reply = await this.call(method, body, opts);
    if (!reply.ok) {
      throw new SupplierCallError(LIANHE, {
        operation: method,
        failure: 'supplier_error',
        retryable: false,
        ambiguous: false,
        supplierCode: String(reply.code),
        message: `code ${reply.code} ${reply.describe}`,
      });
    }
    return reply;
  }

  private malformed(operation: string, message: string, cause?: unknown): SupplierCallError {
    return new SupplierCallError(LIANHE, { operation, failure: 'malformed_reply', retryable: true, ambiguous: true, message, cause });
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Lianhe mixes numbers and strings for the same fields; compare them as text. */
function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function nonNegativeInt(v: unknown): number | undefined {
  const text = scalarText(v);
  if (text === undefined || !/^\d{1,9}$/.test(text)) return undefined;
  return Number(text);
}
