/**
 * Zhiyoubao (智游宝 / PWB) distributor API. See external-apis.md §2.
 *
 * Order codes: the distributor's order code (ours) keys every follow-up transaction; we use it for the
 * ticket sub-order too, since an order holds one ticket type. The codes ZYB returns are kept as
 * supplierOrderId / supplierSubOrderIds for operators.
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
  type NeutralSupplierStatus,
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
  requireCapability,
} from '../supplier-adapter';
import { SupplierCallError, SupplierConfigError, UnknownSupplierStateError, maskPersonalData } from '../supplier-errors';
import { stateTable } from '../../state-mapping/state-table';
import { fenToYuan, postToSupplier } from '../supplier-http';
import {
  type PwbResponse,
  type XmlContent,
  type XmlNode,
  asList,
  buildPwbRequest,
  findElement,
  formatBusinessTime,
  md5Hex,
  parsePwbResponse,
  sameHexSignature,
  signXmlMsg,
  textOf,
} from './pwb-xml';

export const ZHIYOUBAO = 'zhiyoubao';

export const zhiyoubaoConfigSchema = z.object({
  instanceCode: z.string().min(1).default(ZHIYOUBAO),
  /** e.g. http://boss.zhiyoubao.com/boss/service/code.htm */
  endpoint: z.url(),
  corpCode: z.string().min(1),
  userName: z.string().min(1),
  privateKey: z.string().min(1),
  timeoutMs: z.number().int().positive().default(10_000),
  payMethod: z.string().min(1).default('vm'),
  /** SMS template for SEND_SM_REQ, when the account has one. */
  smsTemplateCode: z.string().optional(),
  /** SEND_CODE result codes this account treats as temporary (retry later) rather than a refusal. */
  transientCodes: z.array(z.number().int()).default([]),
});
export type ZhiyoubaoConfig = z.input<typeof zhiyoubaoConfigSchema>;

/** `code` 6: on SEND_CODE the order already exists; on QUERY_RETREAT_STATUS the audit is not finished. */
const CODE_OK = 0;
const CODE_EXISTS_OR_PENDING = 6;

const SUCCESS_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' };
const FAILURE_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'failure' };

/** checkStatus values of CHECK_STATUS_QUERY_RES: those the state mapping table knows (src/state-mapping). */
const CHECK_STATUSES = new Set(stateTable.values('zhiyoubao', 'checkStatus'));

export class ZhiyoubaoAdapter implements SupplierAdapter {
  readonly code = ZHIYOUBAO;
  readonly instanceCode: string;
  readonly capabilities: SupplierCapabilities = {
    partialRefund: true,
    // Validity is configured per ticket type in ZYB's back office (kept equal to Taobao's by onboarding).
    validityChange: false,
    // SEND_SM_REQ takes only the order code: the SMS goes to the mobile given at placement.
    resendToNewMobile: false,
    qrImage: true,
    auditPolling: true,
    auditCallback: true,
    checkRecords: true,
  };
  private readonly config: z.output<typeof zhiyoubaoConfigSchema>;

  constructor(
    config: ZhiyoubaoConfig,
    private readonly clock: Clock = systemClock,
  ) {
    const parsed = zhiyoubaoConfigSchema.safeParse(config);
    if (!parsed.success) throw new SupplierConfigError(ZHIYOUBAO, `invalid config: ${z.prettifyError(parsed.error)}`);
    this.config = parsed.data;
    this.instanceCode = parsed.data.instanceCode;
  }

  async placeOrder(req: PlaceOrderRequest, opts: CallOptions = {}): Promise<PlaceOrderResult> {
    assertPositiveInt(req.quantity, 'quantity');
    const total = req.unitPriceFen * req.quantity;
    const ticketOrder: XmlContent = {
      orderCode: req.ourOrderCode,
      ...(req.idCards?.length
        ? { credentials: { credential: req.idCards.map((c) => ({ name: c.name, id: c.id })) } }
        : {}),
      price: fenToYuan(req.unitPriceFen),
      quantity: String(req.quantity),
      totalPrice: fenToYuan(total),
      occDate: req.visitDate,
      goodsCode: req.supplierTicketType,
      goodsName: '',
      remark: '',
    };
    const body: XmlContent = {
      orderRequest: {
        order: {
          certificateNo: req.idCards?.[0]?.id ?? '',
          linkName: req.visitorName,
          linkMobile: req.mobile,
          orderCode: req.ourOrderCode,
          orderPrice: fenToYuan(total),
          groupNo: '',
          payMethod: this.config.payMethod,
          ticketOrders: { ticketOrder: [ticketOrder] },
        },
      },
    };
    const res = await this.call('SEND_CODE_REQ', body, opts);
    if (res.code === CODE_OK) return this.placedFrom(res, 'SEND_CODE_REQ', false);
    if (res.code === CODE_EXISTS_OR_PENDING) {
      // Our order code is the idempotency key: the first attempt got through, so read it back.
      const existing = await this.call('QUERY_ORDER_REQ', orderByCode(req.ourOrderCode), opts);
      if (existing.code !== CODE_OK) throw this.supplierError('QUERY_ORDER_REQ', existing, true);
      return this.placedFrom(existing, 'QUERY_ORDER_REQ', true);
    }
    return {
      kind: 'rejected',
      permanent: !this.config.transientCodes.includes(res.code),
      supplierCode: String(res.code),
      message: maskPersonalData(res.description || `code ${res.code}`),
    };
  }

  async queryOrder(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<SupplierOrderStatus> {
    const res = await this.callOk('CHECK_STATUS_QUERY_REQ', orderByCode(ref.ourOrderCode), opts);
    const subOrders = asList(findElement(findElement(res.root, 'subOrders'), 'subOrder'));
    if (subOrders.length === 0) throw this.malformed('CHECK_STATUS_QUERY_REQ', 'no subOrder in reply');
    let purchased = 0;
    let used = 0;
    let refunded = 0;
    const states: string[] = [];
    for (const sub of subOrders) {
      purchased += this.intField(sub, 'needCheckNum', 'CHECK_STATUS_QUERY_REQ');
      used += this.intField(sub, 'alreadyCheckNum', 'CHECK_STATUS_QUERY_REQ');
      refunded += this.intField(sub, 'returnNum', 'CHECK_STATUS_QUERY_REQ');
      const state = textOf(sub['checkStatus']) ?? '';
      if (!CHECK_STATUSES.has(state)) {
        throw new UnknownSupplierStateError(ZHIYOUBAO, 'checkStatus', state, 'CHECK_STATUS_QUERY_REQ');
      }
      states.push(state);
    }
    const refundable = Math.max(0, purchased - used - refunded);
    return {
      supplierState: states.join(','),
      neutralStatus: neutralFromQuantities(purchased, used, refunded),
      purchasedQuantity: purchased,
      usedQuantity: used,
      refundedQuantity: refunded,
      refundableQuantity: refundable,
    };
  }

  async resendVoucher(ref: SupplierOrderRef, resend: ResendOptions = {}, opts: CallOptions = {}): Promise<ResendResult> {
    if (resend.newMobile !== undefined) requireCapability(this, 'resendToNewMobile');
    const order: XmlContent = { orderCode: ref.ourOrderCode };
    if (this.config.smsTemplateCode) order['tplCode'] = this.config.smsTemplateCode;
    await this.callOk('SEND_SM_REQ', { orderRequest: { order } }, opts);
    return {};
  }

  async requestRefund(ref: SupplierOrderRef, refund: RefundRequest, opts: CallOptions = {}): Promise<RefundRequestResult> {
    assertPositiveInt(refund.quantity, 'quantity');
    const transaction = refund.wholeOrder ? 'SEND_CODE_CANCEL_NEW_REQ' : 'RETURN_TICKET_NUM_NEW_REQ';
    const body: XmlContent = refund.wholeOrder
      ? orderByCode(ref.ourOrderCode)
      : {
          orderRequest: {
            returnTicket: {
              orderCode: ref.ourOrderCode,
              returnNum: String(refund.quantity),
              // Our refund id makes a repeated request recognisable on their side.
              thirdReturnCode: refund.refundId,
            },
          },
        };
    const res = await this.call(transaction, body, opts);
    if (res.code === CODE_OK) {
      const batchNo = textOf(findElement(res.root, 'retreatBatchNo'));
      // "code 0" only means accepted for audit; without a batch number we cannot follow it.
      if (!batchNo) throw this.malformed(transaction, 'accepted without retreatBatchNo');
      return { kind: 'pending_audit', batchNo };
    }
    // ZYB does not say how many units remain in its refusal: ask, best effort, so the caller can adjust.
    let status: SupplierOrderStatus | undefined;
    try {
      status = await this.queryOrder(ref, opts);
    } catch {
      status = undefined;
    }
    return {
      kind: 'rejected',
      supplierCode: String(res.code),
      message: maskPersonalData(res.description || `code ${res.code}`),
      refundableQuantity: status?.refundableQuantity,
      supplierState: status?.supplierState,
      neutralStatus: status?.neutralStatus,
    };
  }

  async queryRefundAudit(_ref: SupplierOrderRef, batchNo: string, opts: CallOptions = {}): Promise<RefundAuditResult> {
    const res = await this.call('QUERY_RETREAT_STATUS_REQ', { orderRequest: { order: { retreatBatchNo: batchNo } } }, opts);
    return interpretRetreatStatus(res);
  }

  async changeValidity(_ref: SupplierOrderRef, _window: ValidityWindow): Promise<void> {
    requireCapability(this, 'validityChange');
  }

  async queryQrImageUrl(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<string> {
    const res = await this.callOk('QUERY_IMG_URL_REQ', orderByCode(ref.ourOrderCode), opts);
    const url = textOf(findElement(res.root, 'imgUrl')) ?? textOf(findElement(res.root, 'img'));
    if (!url || !/^https?:\/\//.test(url)) throw this.malformed('QUERY_IMG_URL_REQ', 'no image URL in reply');
    return url;
  }

  async queryCheckRecords(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<readonly CheckRecord[]> {
    const op = 'QUERY_SUB_ORDER_CHECK_RECORD_REQ';
    const res = await this.callOk(op, orderByCode(ref.ourOrderCode), opts);
    const records: CheckRecord[] = [];
    for (const sub of asList(findElement(findElement(res.root, 'subOrders'), 'subOrder'))) {
      const subOrderId = textOf(sub['orderCode']);
      for (const rec of asList(findElement(sub['checkRecords'], 'subOrderCheckRecord'))) {
        records.push({ subOrderId, count: this.intField(rec, 'checkNum', op), checkedAt: textOf(rec['checkTime']) ?? '' });
      }
    }
    return records;
  }

  parseCallback(req: InboundCallbackRequest): CallbackParseResult {
    const params = callbackParams(req);
    const key = this.config.privateKey;
    const reject = (reason: 'bad_signature' | 'malformed' | 'unknown_notice', message: string): CallbackParseResult => ({
      ok: false,
      reason,
      message,
      reply: FAILURE_REPLY,
    });
    const digest = canonicalDigest(params);

    if (params['order_no'] !== undefined) {
      // Check (admission) notice: sign = md5("order_no=" + order_no + key)
      const orderNo = params['order_no'];
      if (!sameHexSignature(md5Hex(`order_no=${orderNo}${key}`), params['sign'])) return reject('bad_signature', 'check notice sign mismatch');
      const count = nonNegativeInt(params['checkNum']);
      if (!orderNo || count === undefined) return reject('malformed', 'check notice needs order_no and checkNum');
      return {
        ok: true,
        reply: SUCCESS_REPLY,
        callback: {
          type: 'admission',
          ourOrderCode: orderNo,
          subOrderId: params['sub_order_no'] || undefined,
          count,
          supplierState: params['status'],
          // The notice has no event id: identical repeats collapse; the caller reconciles with queryOrder.
          dedupKey: `zhiyoubao:check:${orderNo}:${digest}`,
        },
      };
    }

    if (params['order_code'] !== undefined) {
      // Order finished notice: sign = md5("order_code=" + order_code + key)
      const orderCode = params['order_code'];
      if (!sameHexSignature(md5Hex(`order_code=${orderCode}${key}`), params['sign'])) return reject('bad_signature', 'finish notice sign mismatch');
      const status = params['status'];
      if (!orderCode || !status) return reject('malformed', 'finish notice needs order_code and status');
      return {
        ok: true,
        reply: SUCCESS_REPLY,
        callback: {
          type: 'order_finished',
          ourOrderCode: orderCode,
          status,
          usedQuantity: nonNegativeInt(params['checkNum']),
          refundedQuantity: nonNegativeInt(params['returnNum']),
          totalQuantity: nonNegativeInt(params['total']),
          dedupKey: `zhiyoubao:finish:${orderCode}:${status}`,
        },
      };
    }

    if (params['orderCode'] !== undefined && params['auditStatus'] !== undefined) {
      // Refund audit notice: sign = md5(orderCode + key); one source prefixes "orderCode=", accept both.
      const orderCode = params['orderCode'];
      const sign = params['sign'];
      if (!sameHexSignature(md5Hex(`${orderCode}${key}`), sign) && !sameHexSignature(md5Hex(`orderCode=${orderCode}${key}`), sign)) {
        return reject('bad_signature', 'refund audit notice sign mismatch');
      }
      const auditStatus = params['auditStatus'];
      if (!orderCode || (auditStatus !== 'success' && auditStatus !== 'failure')) {
        return reject('malformed', 'refund audit notice needs orderCode and auditStatus success|failure');
      }
      const batchNo = params['retreatBatchNo'] || undefined;
      return {
        ok: true,
        reply: SUCCESS_REPLY,
        callback: {
          type: 'refund_audit',
          ourOrderCode: orderCode,
          batchNo,
          approved: auditStatus === 'success',
          quantity: nonNegativeInt(params['returnNum']),
          supplierState: auditStatus,
          dedupKey: `zhiyoubao:retreat:${orderCode}:${batchNo ?? digest}:${auditStatus}`,
        },
      };
    }
    return reject('unknown_notice', 'not a Zhiyoubao notice');
  }

  // --- wire ---

  private async call(transactionName: string, body: XmlContent, opts: CallOptions): Promise<PwbResponse> {
    const xml = buildPwbRequest(
      transactionName,
      { corpCode: this.config.corpCode, userName: this.config.userName },
      formatBusinessTime(this.clock.now()),
      body,
    );
    const form = new URLSearchParams({ xmlMsg: xml, sign: signXmlMsg(xml, this.config.privateKey) });
    const res = await postToSupplier({
      supplier: ZHIYOUBAO,
      operation: transactionName,
      url: this.config.endpoint,
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: form.toString(),
      timeoutMs: this.config.timeoutMs,
      signal: opts.signal,
    });
    try {
      return parsePwbResponse(res.text);
    } catch (err) {
      throw this.malformed(transactionName, (err as Error).message, err);
    }
  }

  /** A call where any non-zero code is a fault (nothing business-like to return). */
  private async callOk(transactionName: string, body: XmlContent, opts: CallOptions): Promise<PwbResponse> {
    const res = await this.call(transactionName, body, opts);
    if (res.code !== CODE_OK) throw this.supplierError(transactionName, res, false);
    return res;
  }

  private placedFrom(res: PwbResponse, op: string, alreadyExisted: boolean): PlaceOrderResult {
    const order = findElement(findElement(res.root, 'orderResponse'), 'order');
    if (!order || typeof order !== 'object' || Array.isArray(order)) throw this.malformed(op, 'no orderResponse/order');
    const supplierOrderId = textOf(order['orderCode']);
    const voucherCode = textOf(order['assistCheckNo']);
    const tickets = asList(findElement(order['ticketOrders'], 'ticketOrder'));
    if (!supplierOrderId || !voucherCode || tickets.length === 0) {
      throw this.malformed(op, 'order lacks orderCode, assistCheckNo or ticketOrders');
    }
    const quantity = tickets.reduce((sum, t) => sum + this.intField(t, 'quantity', op), 0);
    return {
      kind: 'placed',
      supplierOrderId,
      supplierSubOrderIds: tickets.map((t) => textOf(t['orderCode']) ?? '').filter(Boolean),
      vouchers: [{ code: voucherCode, quantity }],
      supplierState: textOf(order['payStatus']),
      alreadyExisted,
    };
  }

  private intField(node: Record<string, XmlNode>, field: string, op: string): number {
    const n = nonNegativeInt(textOf(node[field]));
    if (n === undefined) throw this.malformed(op, `<${field}> is not a non-negative integer`);
    return n;
  }

  private malformed(operation: string, message: string, cause?: unknown): SupplierCallError {
    return new SupplierCallError(ZHIYOUBAO, { operation, failure: 'malformed_reply', retryable: true, ambiguous: true, message, cause });
  }

  private supplierError(operation: string, res: PwbResponse, retryable: boolean): SupplierCallError {
    return new SupplierCallError(ZHIYOUBAO, {
      operation,
      failure: 'supplier_error',
      retryable,
      ambiguous: false,
      supplierCode: String(res.code),
      message: `code ${res.code} ${res.description}`,
    });
  }
}

/**
 * QUERY_RETREAT_STATUS: code 6 = not finished; code 0 = finished, and only the description says
 * which way ("审核完成" vs "审核未通过" — note the refusal also contains "通过"). Negative wording is checked
 * first; finished-but-unrecognised wording is an operator exception, never a guess.
 */
export function interpretRetreatStatus(res: PwbResponse): RefundAuditResult {
  const text = res.description.trim();
  if (/未通过|不通过|驳回|拒绝|失败|不同意/.test(text)) return { kind: 'rejected', reason: maskPersonalData(text) };
  if (res.code === CODE_EXISTS_OR_PENDING) return { kind: 'pending' };
  if (res.code === CODE_OK) {
    if (/等待|审核中|未审核|处理中/.test(text)) return { kind: 'pending' };
    if (/完成|通过|成功|同意/.test(text)) {
      const quantity = nonNegativeInt(textOf(findElement(res.root, 'returnNum')));
      return quantity === undefined ? { kind: 'approved' } : { kind: 'approved', quantity };
    }
    throw new UnknownSupplierStateError(ZHIYOUBAO, 'retreat description', text, 'QUERY_RETREAT_STATUS_REQ');
  }
  throw new SupplierCallError(ZHIYOUBAO, {
    operation: 'QUERY_RETREAT_STATUS_REQ',
    failure: 'supplier_error',
    retryable: false,
    ambiguous: false,
    supplierCode: String(res.code),
    message: `code ${res.code} ${text}`,
  });
}

function neutralFromQuantities(purchased: number, used: number, refunded: number): NeutralSupplierStatus {
  if (purchased > 0 && refunded >= purchased) return 'refunded';
  if (used > 0 && used + refunded >= purchased) return 'used';
  if (used > 0) return 'partially_used';
  if (refunded > 0) return 'partially_refunded';
  return 'issued';
}

function orderByCode(orderCode: string): XmlContent {
  return { orderRequest: { order: { orderCode } } };
}

function assertPositiveInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${what} must be a positive integer, got ${n}`);
}

function nonNegativeInt(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,9}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

/** ZYB sends GET query parameters; a form-encoded POST body is accepted too. */
function callbackParams(req: InboundCallbackRequest): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.query)) if (typeof v === 'string') params[k] = v;
  if (req.method.toUpperCase() === 'POST' && req.rawBody.length > 0) {
    for (const [k, v] of new URLSearchParams(req.rawBody.toString('utf8'))) params[k] ??= v;
  }
  return params;
}

function canonicalDigest(params: Record<string, string>): string {
  const canonical = Object.keys(params)
    .filter((k) => k !== 'sign')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return md5Hex(canonical);
}
