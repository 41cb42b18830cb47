import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { OrderState } from '../../domain/model';
import { bigintColumn, ID_LENGTH } from './column-types';

/**
 * One Taobao e-voucher order as we hold it. Personal data is stored three ways: masked (to show), a keyed
 * hash (to match a gate scan or a lookup) and AES-GCM cipher text (to call the supplier); never in clear.
 */
@Entity({ name: 'orders' })
@Index('idx_orders_created_at_id', ['createdAt', 'id'])
@Index('idx_orders_state', ['state'])
@Index('idx_orders_supplier', ['supplier'])
@Index('idx_orders_mobile_hash', ['mobileHash'])
@Index('idx_orders_id_card_hash', ['idCardHash'])
@Index('uq_orders_taobao_order_id', ['taobaoOrderId'], { unique: true })
export class OrderEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  /** Taobao's order id: 19 digits, past 2^53, so kept as text. */
  @Column({ name: 'taobao_order_id', type: 'varchar', length: 32 })
  taobaoOrderId!: string;

  /** Echoed in every TOP call for this order. */
  @Column({ type: 'varchar', length: 64 })
  token!: string;

  @Column({ name: 'num_iid', type: 'varchar', length: 32, nullable: true })
  numIid!: string | null;

  @Column({ name: 'outer_iid', type: 'varchar', length: 64, nullable: true })
  outerIid!: string | null;

  @Column({ name: 'sub_outer_iid', type: 'varchar', length: 64, nullable: true })
  subOuterIid!: string | null;

  @Column({ name: 'item_title', type: 'varchar', length: 255, nullable: true })
  itemTitle!: string | null;

  @Column({ name: 'sku_properties', type: 'varchar', length: 500, nullable: true })
  skuProperties!: string | null;

  @Column({ name: 'seller_id', type: 'varchar', length: 32, nullable: true })
  sellerId!: string | null;

  @Column({ name: 'seller_nick', type: 'varchar', length: 64, nullable: true })
  sellerNick!: string | null;

  @Column({ name: 'unit_price_fen', ...bigintColumn })
  unitPriceFen!: number;

  @Column({ name: 'total_fee_fen', ...bigintColumn })
  totalFeeFen!: number;

  /** Taobao send_type: 0 QR, 1 matrix code, 2 verification code. */
  @Column({ name: 'send_type', type: 'integer', nullable: true })
  sendType!: number | null;

  /** Taobao consume_type: 0 unrestricted, 1 one scan, 2 several scans per code. */
  @Column({ name: 'consume_type', type: 'integer', nullable: true })
  consumeType!: number | null;

  /** Taobao notice `type`: 0 clear mobile, 1 masked mobile (Taobao sends the SMS), 2 internal. */
  @Column({ name: 'notice_type', type: 'integer' })
  noticeType!: number;

  @Column({ name: 'mobile_masked', type: 'varchar', length: 20, nullable: true })
  mobileMasked!: string | null;

  @Column({ name: 'mobile_hash', type: 'varchar', length: 64, nullable: true })
  mobileHash!: string | null;

  /** Null for type=1 orders: Taobao never gave us the clear number. */
  @Column({ name: 'mobile_cipher', type: 'varchar', length: 255, nullable: true })
  mobileCipher!: string | null;

  @Column({ name: 'id_card_masked', type: 'varchar', length: 32, nullable: true })
  idCardMasked!: string | null;

  @Column({ name: 'id_card_hash', type: 'varchar', length: 64, nullable: true })
  idCardHash!: string | null;

  @Column({ name: 'id_card_cipher', type: 'varchar', length: 255, nullable: true })
  idCardCipher!: string | null;

  @Column({ name: 'visitor_name', type: 'varchar', length: 64, nullable: true })
  visitorName!: string | null;

  @Column({ name: 'valid_start', ...bigintColumn })
  validStart!: number;

  @Column({ name: 'valid_end', ...bigintColumn })
  validEnd!: number;

  /** Supplier code ('zhiyoubao', 'lianhe'); null until the product is mapped. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  supplier!: string | null;

  @Column({ name: 'supplier_order_id', type: 'varchar', length: 64, nullable: true })
  supplierOrderId!: string | null;

  /** JSON array of the supplier's sub-order ids. */
  @Column({ name: 'supplier_sub_order_ids', type: 'text', nullable: true })
  supplierSubOrderIds!: string | null;

  @Column({ type: 'varchar', length: 32 })
  state!: OrderState;

  // The ledger: purchased = available + consumed + refund_pending + refunded + expired.
  @Column({ type: 'integer' })
  purchased!: number;

  @Column({ type: 'integer' })
  available!: number;

  @Column({ type: 'integer' })
  consumed!: number;

  @Column({ name: 'refund_pending', type: 'integer' })
  refundPending!: number;

  @Column({ type: 'integer' })
  refunded!: number;

  @Column({ type: 'integer' })
  expired!: number;

  @Column({ name: 'last_resend_at', ...bigintColumn, nullable: true })
  lastResendAt!: number | null;

  /** Bumped by every update; writers use `WHERE version = ?` for optimistic concurrency. */
  @Column({ type: 'integer' })
  version!: number;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'updated_at', ...bigintColumn })
  updatedAt!: number;
}
