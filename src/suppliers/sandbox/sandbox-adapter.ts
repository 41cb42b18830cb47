/**
 * A supplier with no network, for the embedded default mode and the demo. Deterministic codes derived
 * from our order code, in-memory state only, refunds go to pending audit and are decided on audit query
 * (approved on the first query by default). It speaks a small signed JSON callback format so callback
 * handling can be exercised end to end without a real supplier.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Clock, ValidityWindow } from '../../domain/model';
import { systemClock } from '../../domain/model';
import {
  ALL_CAPABILITIES,
  type CallbackParseResult,
  type CallbackReply,
  type CallOptions,
  type CheckRecord,
  type InboundCallbackRequest,
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
import { SupplierCallError, SupplierConfigError } from '../supplier-errors';

export const SANDBOX = 'sandbox';
export const SANDBOX_SIGNATURE_HEADER = 'x-sandbox-signature';

const capabilityOverrides = z.object(
  Object.fromEntries(ALL_CAPABILITIES.map((c) => [c, z.boolean().optional()])) as Record<keyof SupplierCapabilities, z.ZodOptional<z.ZodBoolean>>,
);

export const sandboxConfigSchema = z.object({
  instanceCode: z.string().min(1).default(SANDBOX),
  /** Key of the sandbox's callback signature (HMAC-SHA256 of the raw body, hex). */
  callbackSecret: z.string().min(1).default('sandbox-callback-secret'),
  /** What the audit decides once it stops being pending. */
  auditDecision: z.enum(['approve', 'reject']).default('approve'),
  /** Audit queries answered "pending" before the decision (0: decided on the first query). */
  auditPendingQueries: z.number().int().min(0).default(0),
  /** Simulated latency of every operation; honours the caller's abort signal. */
  latencyMs: z.number().int().min(0).default(0),
  /** Ticket types the sandbox refuses for good, to demo failed sends. */
  rejectTicketTypes: z.array(z.string()).default([]),
  /** Switch capabilities off (all on by default). */
  capabilities: capabilityOverrides.default({}),
});
export type SandboxConfig = z.input<typeof sandboxConfigSchema>;

interface SandboxOrder {
  readonly supplierOrderId: string;
  readonly voucherCode: string;
  readonly quantity: number;
  used: number;
  refunded: number;
  pendingRefund: number;
  validity?: ValidityWindow;
  mobileResends: number;
  readonly checks: CheckRecord[];
  /** refundId -> batchNo, so a repeated refund request is the same refund. */
  readonly refundsById: Map<string, string>;
  readonly batches: Map<string, { quantity: number; queries: number; outcome?: RefundAuditResult }>;
}

const SUCCESS_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' };
const FAILURE_REPLY: CallbackReply = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'failure' };

const callbackSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('admission'), eventId: z.string().min(1), orderCode: z.string().min(1), count: z.number().int().positive(), totalUsed: z.number().int().min(0).optional() }),
  z.object({
    type: z.literal('refund_audit'),
    eventId: z.string().min(1),
    orderCode: z.string().min(1),
    batchNo: z.string().min(1),
    approved: z.boolean(),
    quantity: z.number().int().positive().optional(),
    reason: z.string().optional(),
  }),
]);
export type SandboxCallbackPayload = z.infer<typeof callbackSchema>;

/** Builds a signed sandbox callback (what the sandbox "supplier" would POST to us). */
export function buildSandboxCallback(secret: string, payload: SandboxCallbackPayload): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify(payload);
  return {
    headers: { 'content-type': 'application/json', [SANDBOX_SIGNATURE_HEADER]: createHmac('sha256', secret).update(body).digest('hex') },
    body,
  };
}

export class SandboxAdapter implements SupplierAdapter {
  readonly code = SANDBOX;
  readonly instanceCode: string;
  readonly capabilities: SupplierCapabilities;
  private readonly config: z.output<typeof sandboxConfigSchema>;
  private readonly orders = new Map<string, SandboxOrder>();

  constructor(
    config: SandboxConfig = {},
    private readonly clock: Clock = systemClock,
  ) {
    const parsed = sandboxConfigSchema.safeParse(config);
    if (!parsed.success) throw new SupplierConfigError(SANDBOX, `invalid config: ${z.prettifyError(parsed.error)}`);
    this.config = parsed.data;
    this.instanceCode = parsed.data.instanceCode;
    const caps = Object.fromEntries(ALL_CAPABILITIES.map((c) => [c, parsed.data.capabilities[c] ?? true]));
    this.capabilities = caps as unknown as SupplierCapabilities;
  }

  /** Number of distinct orders held (lets tests prove idempotent placement). */
  get orderCount(): number {
    return this.orders.size;
  }

  async placeOrder(req: PlaceOrderRequest, opts: CallOptions = {}): Promise<PlaceOrderResult> {
    await this.latency('placeOrder', opts);
    if (!Number.isSafeInteger(req.quantity) || req.quantity <= 0) throw new RangeError('quantity must be a positive integer');
    if (this.config.rejectTicketTypes.includes(req.supplierTicketType)) {
      return { kind: 'rejected', permanent: true, supplierCode: 'TICKET_TYPE_REFUSED', message: `ticket type ${req.supplierTicketType} refused by sandbox` };
    }
    const existing = this.orders.get(req.ourOrderCode);
    const order = existing ?? this.newOrder(req);
    if (!existing) this.orders.set(req.ourOrderCode, order);
    return {
      kind: 'placed',
      supplierOrderId: order.supplierOrderId,
      supplierSubOrderIds: [`${order.supplierOrderId}-1`],
      vouchers: [{ code: order.voucherCode, quantity: order.quantity, qrUrl: `sandbox://qr/${order.voucherCode}` }],
      supplierState: 'issued',
      alreadyExisted: existing !== undefined,
    };
  }

  async queryOrder(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<SupplierOrderStatus> {
    await this.latency('queryOrder', opts);
    const o = this.order(ref, 'queryOrder');
    const refundable = o.quantity - o.used - o.refunded - o.pendingRefund;
    const neutral =
      o.refunded === o.quantity ? 'refunded' : o.pendingRefund > 0 ? 'refund_pending' : o.used > 0 && refundable === 0 ? 'used' : o.used > 0 ? 'partially_used' : o.refunded > 0 ? 'partially_refunded' : 'issued';
    return {
      supplierState: neutral,
      neutralStatus: neutral,
      purchasedQuantity: o.quantity,
      usedQuantity: o.used,
      refundedQuantity: o.refunded,
      refundableQuantity: refundable,
    };
  }

  async resendVoucher(ref: SupplierOrderRef, resend: ResendOptions = {}, opts: CallOptions = {}): Promise<ResendResult> {
    if (resend.newMobile !== undefined) requireCapability(this, 'resendToNewMobile');
    await this.latency('resendVoucher', opts);
    const o = this.order(ref, 'resendVoucher');
    if (resend.newMobile !== undefined) o.mobileResends++;
    return { voucherCodes: [o.voucherCode] };
  }

  async requestRefund(ref: SupplierOrderRef, refund: RefundRequest, opts: CallOptions = {}): Promise<RefundRequestResult> {
    await this.latency('requestRefund', opts);
    if (!Number.isSafeInteger(refund.quantity) || refund.quantity <= 0) throw new RangeError('quantity must be a positive integer');
    const o = this.order(ref, 'requestRefund');
    const known = o.refundsById.get(refund.refundId);
    if (known) return { kind: 'pending_audit', batchNo: known };
    const refundable = o.quantity - o.used - o.refunded - o.pendingRefund;
    if (refund.quantity < refundable && !refund.wholeOrder) requireCapability(this, 'partialRefund');
    if (refund.quantity > refundable) {
      return { kind: 'rejected', supplierCode: 'OVER_QUANTITY', message: `only ${refundable} refundable`, refundableQuantity: refundable, supplierState: 'issued' };
    }
    const batchNo = `SBXR-${digest(`${ref.ourOrderCode}/${refund.refundId}`).slice(0, 12)}`;
    o.refundsById.set(refund.refundId, batchNo);
    o.batches.set(batchNo, { quantity: refund.quantity, queries: 0 });
    o.pendingRefund += refund.quantity;
    return { kind: 'pending_audit', batchNo };
  }

  async queryRefundAudit(ref: SupplierOrderRef, batchNo: string, opts: CallOptions = {}): Promise<RefundAuditResult> {
    requireCapability(this, 'auditPolling');
    await this.latency('queryRefundAudit', opts);
    const o = this.order(ref, 'queryRefundAudit');
    const batch = o.batches.get(batchNo);
    if (!batch) throw this.fault('queryRefundAudit', `unknown refund batch ${batchNo}`);
    if (batch.outcome) return batch.outcome;
    batch.queries++;
    if (batch.queries <= this.config.auditPendingQueries) return { kind: 'pending' };
    o.pendingRefund -= batch.quantity;
    if (this.config.auditDecision === 'approve') {
      o.refunded += batch.quantity;
      batch.outcome = { kind: 'approved', quantity: batch.quantity };
    } else {
      batch.outcome = { kind: 'rejected', reason: 'refused by sandbox audit' };
    }
    return batch.outcome;
  }

  async changeValidity(ref: SupplierOrderRef, window: ValidityWindow, opts: CallOptions = {}): Promise<void> {
    requireCapability(this, 'validityChange');
    await this.latency('changeValidity', opts);
    if (!(window.end >= window.start)) throw new RangeError('validity window ends before it starts');
    this.order(ref, 'changeValidity').validity = { ...window };
  }

  async queryQrImageUrl(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<string> {
    requireCapability(this, 'qrImage');
    await this.latency('queryQrImageUrl', opts);
    return `sandbox://qr/${this.order(ref, 'queryQrImageUrl').voucherCode}`;
  }

  async queryCheckRecords(ref: SupplierOrderRef, opts: CallOptions = {}): Promise<readonly CheckRecord[]> {
    requireCapability(this, 'checkRecords');
    await this.latency('queryCheckRecords', opts);
    return [...this.order(ref, 'queryCheckRecords').checks];
  }

  /** Demo/test hook: visitors passed the sandbox's own gate. Returns false when not enough units are left. */
  recordAdmission(ourOrderCode: string, count: number): boolean {
    const o = this.orders.get(ourOrderCode);
    if (!o || count <= 0 || o.used + o.refunded + o.pendingRefund + count > o.quantity) return false;
    o.used += count;
    o.checks.push({ subOrderId: `${o.supplierOrderId}-1`, count, checkedAt: new Date(this.clock.now()).toISOString() });
    return true;
  }

  parseCallback(req: InboundCallbackRequest): CallbackParseResult {
    const reject = (reason: 'bad_signature' | 'malformed', message: string): CallbackParseResult => ({ ok: false, reason, message, reply: FAILURE_REPLY });
    const expected = Buffer.from(createHmac('sha256', this.config.callbackSecret).update(req.rawBody).digest('hex'));
    const given = Buffer.from(headerValue(req.headers, SANDBOX_SIGNATURE_HEADER) ?? '');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return reject('bad_signature', 'sandbox callback signature mismatch');
    let json: unknown;
    try {
      json = JSON.parse(req.rawBody.toString('utf8'));
    } catch {
      return reject('malformed', 'sandbox callback is not JSON');
    }
    const parsed = callbackSchema.safeParse(json);
    if (!parsed.success) return reject('malformed', 'sandbox callback has the wrong shape');
    const p = parsed.data;
    const dedupKey = `sandbox:${p.type}:${p.eventId}`;
    const o = this.orders.get(p.orderCode);
    const supplierOrderId = o?.supplierOrderId;
    if (p.type === 'admission') {
      return { ok: true, reply: SUCCESS_REPLY, callback: { type: 'admission', ourOrderCode: p.orderCode, supplierOrderId, count: p.count, totalUsed: p.totalUsed, dedupKey } };
    }
    return {
      ok: true,
      reply: SUCCESS_REPLY,
      callback: { type: 'refund_audit', ourOrderCode: p.orderCode, supplierOrderId, batchNo: p.batchNo, approved: p.approved, quantity: p.quantity, reason: p.reason, dedupKey },
    };
  }

  private newOrder(req: PlaceOrderRequest): SandboxOrder {
    const h = digest(req.ourOrderCode);
    // Twelve digits derived from the order code: the same order always gets the same voucher.
    const voucherCode = (BigInt(`0x${h.slice(0, 15)}`) % 10n ** 12n).toString().padStart(12, '0');
    return {
      supplierOrderId: `SBX-${h.slice(0, 10).toUpperCase()}`,
      voucherCode,
      quantity: req.quantity,
      used: 0,
      refunded: 0,
      pendingRefund: 0,
      validity: req.validity,
      mobileResends: 0,
      checks: [],
      refundsById: new Map(),
      batches: new Map(),
    };
  }

  private order(ref: SupplierOrderRef, operation: string): SandboxOrder {
    const o = this.orders.get(ref.ourOrderCode);
    if (!o) throw this.fault(operation, `no sandbox order ${ref.ourOrderCode}`);
    return o;
  }

  private fault(operation: string, message: string): SupplierCallError {
    return new SupplierCallError(SANDBOX, { operation, failure: 'supplier_error', retryable: false, ambiguous: false, message });
  }

  /** Waits the configured latency; the caller's signal cuts it short like a real aborted request. */
  private latency(operation: string, opts: CallOptions): Promise<void> {
    const signal = opts.signal;
    const timeout = () => new SupplierCallError(SANDBOX, { operation, failure: 'timeout', retryable: true, ambiguous: false, message: 'aborted at deadline' });
    if (signal?.aborted) return Promise.reject(timeout());
    if (this.config.latencyMs === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(timeout());
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, this.config.latencyMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
