/**
 * Which codes Taobao holds for an order and which we would send now. The codes last told to Taobao are the ones
 * in the payload of the order's latest `taobao.send` / `taobao.resend` work item: that payload is what the TOP call
 * sends (stable across retries), so it is the record of what Taobao was given.
 */
import { In, MoreThan, type EntityManager } from 'typeorm';
import { VoucherEntity } from '../persistence/entities/voucher.entity';
import { WorkItemEntity } from '../persistence/entities/work-item.entity';
import type { VerifyCode } from '../taobao/top-client';
import { TAOBAO_FLOW_WORK } from './order-ports';

/** Payload of `taobao.send` and `taobao.resend`. */
export interface CodesCallPayload {
  readonly orderId: string;
  readonly codes: readonly VerifyCode[];
}

/** Codes with units still usable, and how many: what `eticket.resend` carries. */
export async function usableCodes(em: EntityManager, orderId: string): Promise<VerifyCode[]> {
  const rows = await em.find(VoucherEntity, { where: { orderId, status: 'active', remaining: MoreThan(0) }, order: { id: 'ASC' } });
  return rows.map((v) => ({ code: v.code, num: v.remaining }));
}

/** The codes in the latest send/resend we queued for Taobao; undefined when none was queued yet. */
export async function lastSentCodes(em: EntityManager, orderId: string): Promise<string[] | undefined> {
  const row = await em.findOne(WorkItemEntity, {
    where: { orderId, kind: In([TAOBAO_FLOW_WORK.taobaoSend, TAOBAO_FLOW_WORK.taobaoResend]) },
    order: { id: 'DESC' },
  });
  if (!row) return undefined;
  const payload = JSON.parse(row.payload) as Partial<CodesCallPayload>;
  return (payload.codes ?? []).map((c) => c.code);
}

/** Same codes, whatever the order. */
export function sameCodeSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((c) => sb.has(c));
}
