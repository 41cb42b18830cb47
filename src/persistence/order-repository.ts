/**
 * Orders and their vouchers: insert, look up, and list for the internal API. Views never carry the cipher
 * text or the lookup hashes of personal data, only the masks.
 */
import { Brackets, type EntityManager } from 'typeorm';
import { assertLedger } from '../domain/ledger';
import type { Ledger, OrderState } from '../domain/model';
import type { Database } from './database';
import { OrderEntity } from './entities/order.entity';
import { VoucherEntity, type VoucherStatus } from './entities/voucher.entity';
import { DuplicateOrderError, InvalidPageTokenError, isUniqueViolation } from './errors';
import { newOrderId } from './ids';
import { insertStatement, type SqlStatement } from './statement-batch';

export { DuplicateOrderError, InvalidPageTokenError } from './errors';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** An order to store. Personal data arrives already protected (see PersonalDataProtector). */
export interface NewOrder {
  /** Our id; generated ('o_' + time-sortable random) when absent. */
  id?: string;
  taobaoOrderId: string;
  token: string;
  numIid?: string | null;
  outerIid?: string | null;
  subOuterIid?: string | null;
  itemTitle?: string | null;
  skuProperties?: string | null;
  sellerId?: string | null;
  sellerNick?: string | null;
  unitPriceFen: number;
  totalFeeFen: number;
  sendType?: number | null;
  consumeType?: number | null;
  /** Taobao notice `type` (0/1/2). */
  noticeType: number;
  mobileMasked?: string | null;
  mobileHash?: string | null;
  mobileCipher?: string | null;
  idCardMasked?: string | null;
  idCardHash?: string | null;
  idCardCipher?: string | null;
  visitorName?: string | null;
  validStart: number;
  validEnd: number;
  supplier?: string | null;
  supplierOrderId?: string | null;
  supplierSubOrderIds?: readonly string[];
  state: OrderState;
  ledger: Ledger;
  lastResendAt?: number | null;
  createdAt: number;
  /** Defaults to createdAt. */
  updatedAt?: number;
}

export interface NewVoucher {
  code: string;
  qrPayload?: string | null;
  total: number;
  /** Defaults to total. */
  remaining?: number;
  status?: VoucherStatus;
  /** Defaults to the order's createdAt. */
  createdAt?: number;
}

export interface VoucherView {
  id: number;
  code: string;
  qrPayload: string | null;
  total: number;
  remaining: number;
  status: VoucherStatus;
  createdAt: number;
}

/** An order as the API sees it: masks only, no hash, no cipher. */
export interface OrderView {
  id: string;
  taobaoOrderId: string;
  token: string;
  numIid: string | null;
  outerIid: string | null;
  subOuterIid: string | null;
  itemTitle: string | null;
  skuProperties: string | null;
  sellerId: string | null;
  sellerNick: string | null;
  unitPriceFen: number;
  totalFeeFen: number;
  sendType: number | null;
  consumeType: number | null;
  noticeType: number;
  mobileMasked: string | null;
  idCardMasked: string | null;
  validStart: number;
  validEnd: number;
  supplier: string | null;
  supplierOrderId: string | null;
  supplierSubOrderIds: string[];
  state: OrderState;
  ledger: Ledger;
  lastResendAt: number | null;
  version: number;
  createdAt: number;
  updatedAt: number;
  vouchers: VoucherView[];
}

export interface OrderListFilter {
  state?: OrderState;
  supplier?: string;
  /** Matches outer_iid or sub_outer_iid. */
  product?: string;
  taobaoOrderId?: string;
  /** Created at or after (epoch ms). */
  createdFrom?: number;
  /** Created before (epoch ms). */
  createdTo?: number;
}

export interface OrderPage {
  orders: OrderView[];
  /** Absent on the last page. */
  nextPageToken?: string;
}

export class OrderRepository {
  constructor(private readonly db: Database) {}

  /**
   * Stores an order and its vouchers atomically, in the caller's transaction when `em` is given.
   * Throws DuplicateOrderError when the Taobao order id is already stored.
   */
  async insert(order: NewOrder, vouchers: readonly NewVoucher[] = [], em?: EntityManager): Promise<OrderView> {
    assertLedger(order.ledger);
    const row = toRow(order);
    const voucherRows = vouchers.map((v) => toVoucherRow(row, v));
    const work = async (m: EntityManager): Promise<OrderView> => {
      try {
        await m.insert(OrderEntity, row);
      } catch (err) {
        if (isUniqueViolation(err) && (await m.findOneBy(OrderEntity, { taobaoOrderId: row.taobaoOrderId }))) {
          throw new DuplicateOrderError(row.taobaoOrderId);
        }
        throw err;
      }
      if (voucherRows.length === 0) return toView(row, []);
      await m.insert(VoucherEntity, voucherRows);
      // The voucher ids are the database's; the order itself is exactly the row we wrote.
      return toView(row, (await vouchersOf(m, [row.id])).get(row.id) ?? []);
    };
    return em ? work(em) : this.db.transaction(work);
  }

  /**
   * The INSERT of an order without vouchers, as a statement to batch (statement-batch.ts), with the id it will have.
   * A Taobao order id already stored makes the statement fail with a unique violation.
   */
  insertStatement(order: NewOrder, em: EntityManager): { readonly id: string; readonly statement: SqlStatement } {
    assertLedger(order.ledger);
    const row = toRow(order);
    return { id: row.id, statement: insertStatement(em, OrderEntity, row) };
  }

  findById(id: string, em?: EntityManager): Promise<OrderView | undefined> {
    return em ? loadView(em, { id }) : this.db.read((m) => loadView(m, { id }));
  }

  findByTaobaoOrderId(taobaoOrderId: string, em?: EntityManager): Promise<OrderView | undefined> {
    return em ? loadView(em, { taobaoOrderId }) : this.db.read((m) => loadView(m, { taobaoOrderId }));
  }

  /**
   * Newest first, keyset-paginated on (created_at, id): a page never repeats or skips an order even while
   * new orders arrive. Throws InvalidPageTokenError for a token we did not issue.
   */
  async list(filter: OrderListFilter, pageSize?: number, pageToken?: string): Promise<OrderPage> {
    const size = clampPageSize(pageSize);
    const after = pageToken === undefined || pageToken === '' ? undefined : decodePageToken(pageToken);
    return this.db.read(async (m) => {
      const q = m.createQueryBuilder(OrderEntity, 'o');
      if (filter.state !== undefined) q.andWhere('o.state = :state', { state: filter.state });
      if (filter.supplier !== undefined) q.andWhere('o.supplier = :supplier', { supplier: filter.supplier });
      if (filter.product !== undefined) {
        q.andWhere(
          new Brackets((b) => b.where('o.outerIid = :product', { product: filter.product }).orWhere('o.subOuterIid = :product')),
        );
      }
      if (filter.taobaoOrderId !== undefined) q.andWhere('o.taobaoOrderId = :tid', { tid: filter.taobaoOrderId });
      if (filter.createdFrom !== undefined) q.andWhere('o.createdAt >= :from', { from: filter.createdFrom });
      if (filter.createdTo !== undefined) q.andWhere('o.createdAt < :to', { to: filter.createdTo });
      if (after) {
        q.andWhere(
          new Brackets((b) =>
            b
              .where('o.createdAt < :afterCreated', { afterCreated: after.createdAt })
              .orWhere(new Brackets((c) => c.where('o.createdAt = :afterCreated').andWhere('o.id < :afterId', { afterId: after.id }))),
          ),
        );
      }
      // One extra row tells whether another page exists.
      const rows = await q.orderBy('o.createdAt', 'DESC').addOrderBy('o.id', 'DESC').take(size + 1).getMany();
      const hasMore = rows.length > size;
      const pageRows = hasMore ? rows.slice(0, size) : rows;
      const vouchers = await vouchersOf(m, pageRows.map((r) => r.id));
      const orders = pageRows.map((r) => toView(r, vouchers.get(r.id) ?? []));
      const last = pageRows[pageRows.length - 1];
      return hasMore && last ? { orders, nextPageToken: encodePageToken(last.createdAt, last.id) } : { orders };
    });
  }
}

export function clampPageSize(pageSize: number | undefined): number {
  if (pageSize === undefined || !Number.isFinite(pageSize) || pageSize < 1) return DEFAULT_PAGE_SIZE;
  return Math.min(Math.floor(pageSize), MAX_PAGE_SIZE);
}

const TOKEN_VERSION = 1;

export function encodePageToken(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([TOKEN_VERSION, createdAt, id]), 'utf8').toString('base64url');
}

export function decodePageToken(token: string): { createdAt: number; id: string } {
  if (token.length > 200 || !/^[A-Za-z0-9_-]+$/.test(token)) throw new InvalidPageTokenError();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidPageTokenError();
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    parsed[0] !== TOKEN_VERSION ||
    !Number.isSafeInteger(parsed[1]) ||
    (parsed[1] as number) < 0 ||
    typeof parsed[2] !== 'string' ||
    parsed[2].length === 0 ||
    parsed[2].length > 40
  ) {
    throw new InvalidPageTokenError();
  }
  return { createdAt: parsed[1] as number, id: parsed[2] };
}

function toRow(o: NewOrder): OrderEntity {
  const row = new OrderEntity();
  Object.assign(row, {
    id: o.id ?? newOrderId(o.createdAt),
    taobaoOrderId: o.taobaoOrderId,
    token: o.token,
    numIid: o.numIid ?? null,
    outerIid: o.outerIid ?? null,
    subOuterIid: o.subOuterIid ?? null,
    itemTitle: o.itemTitle ?? null,
    skuProperties: o.skuProperties ?? null,
    sellerId: o.sellerId ?? null,
    sellerNick: o.sellerNick ?? null,
    unitPriceFen: o.unitPriceFen,
    totalFeeFen: o.totalFeeFen,
    sendType: o.sendType ?? null,
    consumeType: o.consumeType ?? null,
    noticeType: o.noticeType,
    mobileMasked: o.mobileMasked ?? null,
    mobileHash: o.mobileHash ?? null,
    mobileCipher: o.mobileCipher ?? null,
    idCardMasked: o.idCardMasked ?? null,
    idCardHash: o.idCardHash ?? null,
    idCardCipher: o.idCardCipher ?? null,
    visitorName: o.visitorName ?? null,
    validStart: o.validStart,
    validEnd: o.validEnd,
    supplier: o.supplier ?? null,
    supplierOrderId: o.supplierOrderId ?? null,
    supplierSubOrderIds: o.supplierSubOrderIds && o.supplierSubOrderIds.length > 0 ? JSON.stringify(o.supplierSubOrderIds) : null,
    state: o.state,
    purchased: o.ledger.purchased,
    available: o.ledger.available,
    consumed: o.ledger.consumed,
    refundPending: o.ledger.refundPending,
    refunded: o.ledger.refunded,
    expired: o.ledger.expired,
    lastResendAt: o.lastResendAt ?? null,
    version: 1,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt ?? o.createdAt,
  } satisfies OrderEntity);
  return row;
}

function toVoucherRow(order: OrderEntity, v: NewVoucher): Omit<VoucherEntity, 'id'> {
  return {
    orderId: order.id,
    code: v.code,
    qrPayload: v.qrPayload ?? null,
    total: v.total,
    remaining: v.remaining ?? v.total,
    status: v.status ?? 'active',
    createdAt: v.createdAt ?? order.createdAt,
  };
}

async function loadView(m: EntityManager, where: { id: string } | { taobaoOrderId: string }): Promise<OrderView | undefined> {
  const row = await m.findOneBy(OrderEntity, where);
  if (!row) return undefined;
  const vouchers = await vouchersOf(m, [row.id]);
  return toView(row, vouchers.get(row.id) ?? []);
}

async function vouchersOf(m: EntityManager, orderIds: readonly string[]): Promise<Map<string, VoucherView[]>> {
  const byOrder = new Map<string, VoucherView[]>();
  if (orderIds.length === 0) return byOrder;
  const rows = await m
    .createQueryBuilder(VoucherEntity, 'v')
    .where('v.orderId IN (:...ids)', { ids: [...orderIds] })
    .orderBy('v.id', 'ASC')
    .getMany();
  for (const v of rows) {
    const list = byOrder.get(v.orderId) ?? [];
    list.push({ id: v.id, code: v.code, qrPayload: v.qrPayload, total: v.total, remaining: v.remaining, status: v.status, createdAt: v.createdAt });
    byOrder.set(v.orderId, list);
  }
  return byOrder;
}

function toView(r: OrderEntity, vouchers: VoucherView[]): OrderView {
  return {
    id: r.id,
    taobaoOrderId: r.taobaoOrderId,
    token: r.token,
    numIid: r.numIid,
    outerIid: r.outerIid,
    subOuterIid: r.subOuterIid,
    itemTitle: r.itemTitle,
    skuProperties: r.skuProperties,
    sellerId: r.sellerId,
    sellerNick: r.sellerNick,
    unitPriceFen: r.unitPriceFen,
    totalFeeFen: r.totalFeeFen,
    sendType: r.sendType,
    consumeType: r.consumeType,
    noticeType: r.noticeType,
    mobileMasked: r.mobileMasked,
    idCardMasked: r.idCardMasked,
    validStart: r.validStart,
    validEnd: r.validEnd,
    supplier: r.supplier,
    supplierOrderId: r.supplierOrderId,
    supplierSubOrderIds: parseIdList(r.supplierSubOrderIds),
    state: r.state,
    ledger: {
      purchased: r.purchased,
      available: r.available,
      consumed: r.consumed,
      refundPending: r.refundPending,
      refunded: r.refunded,
      expired: r.expired,
    },
    lastResendAt: r.lastResendAt,
    version: r.version,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    vouchers,
  };
}

function parseIdList(text: string | null): string[] {
  if (text === null || text === '') return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new Error('supplier_sub_order_ids is not a JSON array of strings');
  }
  return parsed;
}
