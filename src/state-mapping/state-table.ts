/**
 * THE state mapping: every outside state we know (Taobao/Alipay trade and refund states, Zhiyoubao check, finish
 * and audit states, Lianhe order status codes, the adapters' neutral statuses) and what it means in our terms.
 * One versioned table in code: a change of meaning bumps STATE_MAPPING_VERSION, so reports and exceptions say
 * which table judged them. A value that is not here is UNMAPPED — an operator exception, never a default.
 *
 * Each entry lists the order states of ours that are consistent with the outside state (reconciliation calls
 * anything else drift) and, for refund and audit states, the refund stage it means.
 * Sources: external-apis.md §2.4-2.5, §3.2-3.4, §4; seeds/003 (Alipay trade/refund states).
 */
import { OrderState as S, type OrderState } from '../domain/model';
import { DEFAULT_LIANHE_ORDER_STATUS } from '../suppliers/lianhe/lianhe-status';
import { NEUTRAL_SUPPLIER_STATUSES, type NeutralSupplierStatus } from '../suppliers/supplier-adapter';

/** Bump when an entry's meaning changes. */
export const STATE_MAPPING_VERSION = 1;

export type OutsideSystem = 'taobao' | 'alipay' | 'zhiyoubao' | 'lianhe' | 'supplier';
export const OUTSIDE_SYSTEMS: readonly OutsideSystem[] = ['taobao', 'alipay', 'zhiyoubao', 'lianhe', 'supplier'];

/** Where a refund stands, in our words. */
export type RefundStage = 'none' | 'requested' | 'pending_audit' | 'approved' | 'rejected' | 'closed';

export interface MappedState {
  readonly system: OutsideSystem;
  /** The outside field, e.g. trade_status, checkStatus, orderStatus. */
  readonly field: string;
  readonly value: string;
  /** Our order states consistent with it; empty = we should hold no live order (e.g. unpaid). */
  readonly ours: readonly OrderState[];
  readonly refund?: RefundStage;
  readonly meaning: string;
}

type Row = readonly [value: string, ours: readonly OrderState[], meaning: string, refund?: RefundStage];

// Groups of our states used below.
const NOT_ISSUED = [S.Received, S.Issuing, S.IssueFailed] as const;
const CODES_OUT = [S.Issued, S.PartiallyConsumed, S.Consumed, S.RefundPendingAudit, S.PartiallyRefunded, S.Refunded, S.Expired, S.Closed] as const;
const LIVE_CODES = [S.Issued, S.PartiallyConsumed, S.RefundPendingAudit, S.PartiallyRefunded, S.Expired] as const;
const ANY_PAID = [...NOT_ISSUED, ...CODES_OUT] as const;
const NO_ADMISSION = [S.Issued, S.RefundPendingAudit, S.PartiallyRefunded, S.Refunded, S.Expired] as const;
const SOME_ADMITTED = [S.PartiallyConsumed, S.RefundPendingAudit, S.Closed, S.Expired] as const;

/** Taobao Trade.status (TOP) — the e-voucher trade as Taobao sees it. */
const TAOBAO_TRADE: readonly Row[] = [
  ['TRADE_NO_CREATE_PAY', [], 'no Alipay trade created: nothing for us yet'],
  ['WAIT_BUYER_PAY', [], 'unpaid: Taobao sends no send notice yet'],
  ['PAY_PENDING', [], 'payment being confirmed: no send notice yet'],
  ['WAIT_PRE_AUTH_CONFIRM', [], 'pre-authorised, not paid: no send notice yet'],
  ['WAIT_SELLER_SEND_GOODS', [...NOT_ISSUED], 'paid, codes not sent yet'],
  ['SELLER_CONSIGNED_PART', [...LIVE_CODES, ...NOT_ISSUED], 'part of the codes sent'],
  ['WAIT_BUYER_CONFIRM_GOODS', [...CODES_OUT], 'codes sent'],
  ['TRADE_BUYER_SIGNED', [...CODES_OUT], 'buyer signed (codes sent)'],
  ['TRADE_FINISHED', [S.Consumed, S.PartiallyConsumed, S.PartiallyRefunded, S.Expired, S.Issued, S.Closed], 'trade finished: no more refunds through Taobao'],
  ['TRADE_CLOSED', [S.Refunded, S.Closed, S.IssueFailed], 'closed: fully refunded, or closed unpaid'],
  ['TRADE_CLOSED_BY_TAOBAO', [S.Closed, S.IssueFailed], 'closed by Taobao before payment'],
];

/** Taobao Trade.refund_status. */
const TAOBAO_REFUND: readonly Row[] = [
  ['NO_REFUND', [...ANY_PAID], 'no refund asked', 'none'],
  ['WAIT_SELLER_AGREE', [...ANY_PAID], 'buyer asked for a refund', 'requested'],
  ['WAIT_BUYER_RETURN_GOODS', [...ANY_PAID], 'seller agreed, waiting for the return', 'pending_audit'],
  ['WAIT_SELLER_CONFIRM_GOODS', [...ANY_PAID], 'returned, waiting for the seller', 'pending_audit'],
  ['SELLER_REFUSE_BUYER', [...ANY_PAID], 'seller refused the refund', 'rejected'],
  ['SUCCESS', [S.Refunded, S.PartiallyRefunded, S.Closed, S.IssueFailed, S.RefundPendingAudit], 'refund succeeded', 'approved'],
  ['CLOSED', [...ANY_PAID], 'refund closed; the trade goes on', 'closed'],
];

/**
 * Taobao eticket code status in `codes.get` (§1.4 lists the field without its values; inferred, as our TOP
 * simulator models it): 1 usable, 0 voided (refunded / closed).
 */
const TAOBAO_CODE: readonly Row[] = [
  ['1', [...LIVE_CODES, S.Consumed, S.Closed], 'code valid'],
  ['0', [S.Refunded, S.Closed, S.Consumed, S.Expired, S.PartiallyRefunded], 'code voided'],
];

/** Alipay trade_status, guarantee (担保) and instant (即时到账) interfaces (seeds/003, §4). */
const ALIPAY_TRADE: readonly Row[] = [
  ['WAIT_BUYER_PAY', [], 'trade created, waiting for payment'],
  ['WAIT_SELLER_SEND_GOODS', [...NOT_ISSUED], 'paid, waiting for the seller to send'],
  ['WAIT_BUYER_CONFIRM_GOODS', [...CODES_OUT], 'sent, waiting for the buyer to confirm'],
  ['TRADE_SUCCESS', [...ANY_PAID], 'paid (instant, advanced): refundable'],
  ['TRADE_FINISHED', [S.Consumed, S.PartiallyConsumed, S.PartiallyRefunded, S.Expired, S.Issued, S.Closed], 'finished: not refundable any more'],
  ['TRADE_CLOSED', [S.Refunded, S.Closed, S.IssueFailed], 'closed unpaid, or fully refunded'],
];

/** Alipay refund_status (seeds/003 — the seed's "REFUND_ CLOSED" is a typo of REFUND_CLOSED, not a state). */
const ALIPAY_REFUND: readonly Row[] = [
  ['WAIT_SELLER_AGREE', [...ANY_PAID], 'buyer asked for a refund', 'requested'],
  ['SELLER_REFUSE_BUYER', [...ANY_PAID], 'seller refused the refund', 'rejected'],
  ['WAIT_BUYER_RETURN_GOODS', [...ANY_PAID], 'seller agreed, waiting for the return', 'pending_audit'],
  ['WAIT_SELLER_CONFIRM_GOODS', [...ANY_PAID], 'returned, waiting for the seller', 'pending_audit'],
  ['REFUND_SUCCESS', [S.Refunded, S.PartiallyRefunded, S.Closed, S.IssueFailed, S.RefundPendingAudit], 'refund succeeded', 'approved'],
  ['REFUND_CLOSED', [...ANY_PAID], 'refund closed; the trade goes on', 'closed'],
];

/** Zhiyoubao CHECK_STATUS_QUERY_RES subOrder/checkStatus (§2.4). */
const ZHIYOUBAO_CHECK: readonly Row[] = [
  ['un_check', [...NO_ADMISSION], 'nobody admitted yet'],
  ['checking', [...SOME_ADMITTED, S.PartiallyRefunded], 'some units admitted'],
  ['checked', [S.Consumed, S.PartiallyRefunded, S.Closed, S.RefundPendingAudit], 'every unit that was not returned is admitted'],
];

/** Zhiyoubao refund audit: the retreat callback's auditStatus (§2.5). */
const ZHIYOUBAO_AUDIT: readonly Row[] = [
  ['success', [S.Refunded, S.PartiallyRefunded, S.Closed, S.RefundPendingAudit, S.PartiallyConsumed, S.Expired], 'refund approved by the scenic spot', 'approved'],
  ['failure', [...CODES_OUT], 'refund rejected by the scenic spot', 'rejected'],
];

/** Zhiyoubao QUERY_RETREAT_STATUS description texts seen (§2.4); the adapter reads them (interpretRetreatStatus). */
const ZHIYOUBAO_RETREAT: readonly Row[] = [
  ['审核完成', [S.Refunded, S.PartiallyRefunded, S.Closed, S.RefundPendingAudit, S.PartiallyConsumed, S.Expired], 'audit done: approved', 'approved'],
  ['审核未通过', [...CODES_OUT], 'audit done: rejected', 'rejected'],
  ['等待审核中', [S.RefundPendingAudit], 'waiting for the audit', 'pending_audit'],
];

/** Zhiyoubao order-finished notice status (§2.5). */
const ZHIYOUBAO_FINISH: readonly Row[] = [
  ['success', [S.Consumed, S.PartiallyRefunded, S.Closed], 'every unit checked'],
  ['cancel', [S.Refunded, S.Closed], 'order cancelled'],
];

/** Zhiyoubao consume notice status (§2.5). */
const ZHIYOUBAO_CONSUME: readonly Row[] = [['check', [...SOME_ADMITTED, S.Consumed, S.PartiallyRefunded], 'units admitted at the gate']];

/** Adapters' neutral supplier statuses (supplier-adapter.ts) onto ours. */
export const NEUTRAL_TO_OURS: Readonly<Record<NeutralSupplierStatus, readonly [readonly OrderState[], string, RefundStage?]>> = {
  created: [[...NOT_ISSUED], 'order created, not paid or issued'],
  issued: [[S.Issued, S.RefundPendingAudit, S.Expired, S.Issuing], 'issued, nothing used'],
  issue_failed: [[S.IssueFailed, S.Received, S.Issuing], 'issuing failed'],
  partially_used: [[S.PartiallyConsumed, S.RefundPendingAudit, S.Closed, S.Expired], 'some units used'],
  used: [[S.Consumed, S.Closed], 'every remaining unit used'],
  refund_pending: [[S.RefundPendingAudit], 'refund waiting for audit', 'pending_audit'],
  partially_refunded: [[S.PartiallyRefunded, S.RefundPendingAudit, S.Closed, S.Expired], 'some units refunded', 'approved'],
  refunded: [[S.Refunded], 'every unit refunded', 'approved'],
  refund_rejected: [[...LIVE_CODES, S.Consumed, S.Closed], 'last refund rejected', 'rejected'],
  cancelled: [[S.Refunded, S.Closed, S.IssueFailed], 'order cancelled'],
};

function rows(system: OutsideSystem, field: string, list: readonly Row[]): MappedState[] {
  return list.map(([value, ours, meaning, refund]) => ({ system, field, value, ours, meaning, ...(refund ? { refund } : {}) }));
}

/** Lianhe orderStatus codes: the code's neutral status (default table, or an instance's configured one) onto ours. */
export function lianheRows(codes: Readonly<Record<string, NeutralSupplierStatus>> = DEFAULT_LIANHE_ORDER_STATUS): MappedState[] {
  return Object.entries(codes).map(([code, neutral]) => {
    const [ours, meaning, refund] = NEUTRAL_TO_OURS[neutral];
    return { system: 'lianhe', field: 'orderStatus', value: code, ours, meaning: `${neutral}: ${meaning}`, ...(refund ? { refund } : {}) };
  });
}

/** Every entry of the table (Lianhe with its default codes). */
export const STATE_TABLE: readonly MappedState[] = [
  ...rows('taobao', 'trade_status', TAOBAO_TRADE),
  ...rows('taobao', 'refund_status', TAOBAO_REFUND),
  ...rows('taobao', 'code_status', TAOBAO_CODE),
  ...rows('alipay', 'trade_status', ALIPAY_TRADE),
  ...rows('alipay', 'refund_status', ALIPAY_REFUND),
  ...rows('zhiyoubao', 'checkStatus', ZHIYOUBAO_CHECK),
  ...rows('zhiyoubao', 'auditStatus', ZHIYOUBAO_AUDIT),
  ...rows('zhiyoubao', 'retreat_description', ZHIYOUBAO_RETREAT),
  ...rows('zhiyoubao', 'finish_status', ZHIYOUBAO_FINISH),
  ...rows('zhiyoubao', 'consume_status', ZHIYOUBAO_CONSUME),
  ...lianheRows(),
  ...NEUTRAL_SUPPLIER_STATUSES.map((n): MappedState => {
    const [ours, meaning, refund] = NEUTRAL_TO_OURS[n];
    return { system: 'supplier', field: 'neutral_status', value: n, ours, meaning, ...(refund ? { refund } : {}) };
  }),
];

const key = (system: string, field: string, value: string) => `${system}\u0000${field}\u0000${value}`;

/** A lookup over the table; Lianhe codes can come from an instance's configured mapping. */
export class StateTable {
  private readonly byKey = new Map<string, MappedState>();

  constructor(entries: readonly MappedState[] = STATE_TABLE) {
    for (const e of entries) {
      const k = key(e.system, e.field, e.value);
      if (this.byKey.has(k)) throw new Error(`state table: ${e.system} ${e.field} '${e.value}' is listed twice`);
      this.byKey.set(k, e);
    }
  }

  /** The meaning of an outside state, or undefined when it is not in the table (unmapped: raise it). */
  lookup(system: OutsideSystem, field: string, value: string): MappedState | undefined {
    return this.byKey.get(key(system, field, value));
  }

  /** Whether our state agrees with the outside one; undefined when the outside state is unmapped. */
  consistent(system: OutsideSystem, field: string, value: string, ours: OrderState): boolean | undefined {
    const m = this.lookup(system, field, value);
    return m ? m.ours.includes(ours) : undefined;
  }

  entries(): MappedState[] {
    return [...this.byKey.values()];
  }

  /** Known values of one field, for listings and tests. */
  values(system: OutsideSystem, field: string): string[] {
    return this.entries()
      .filter((e) => e.system === system && e.field === field)
      .map((e) => e.value);
  }
}

export const stateTable = new StateTable();
