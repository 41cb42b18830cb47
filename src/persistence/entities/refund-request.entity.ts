import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

export type RefundFromBucket = 'available' | 'expired';
export type RefundOrigin = 'taobao_cancel' | 'rights_protection' | 'internal' | 'expiry';
export type RefundAuditState = 'pending_submit' | 'pending_audit' | 'approved' | 'rejected' | 'failed';

/** A request to the supplier to cancel units; suppliers accept first and audit later. */
@Entity({ name: 'refund_requests' })
@Index('idx_refund_requests_order_id', ['orderId'])
@Index('idx_refund_requests_supplier_batch_no', ['supplierBatchNo'])
@Index('uq_refund_requests_caller_request_id', ['callerRequestId'], { unique: true })
export class RefundRequestEntity {
  /** Our refund id, also the idempotency key we give the supplier. */
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH })
  orderId!: string;

  @Column({ type: 'integer' })
  quantity!: number;

  @Column({ name: 'from_bucket', type: 'varchar', length: 16 })
  fromBucket!: RefundFromBucket;

  @Column({ type: 'varchar', length: 24 })
  origin!: RefundOrigin;

  /** An internal caller's request id, so its retry finds the same refund. */
  @Column({ name: 'caller_request_id', type: 'varchar', length: 64, nullable: true })
  callerRequestId!: string | null;

  /** The supplier's audit handle (Zhiyoubao retreatBatchNo). */
  @Column({ name: 'supplier_batch_no', type: 'varchar', length: 64, nullable: true })
  supplierBatchNo!: string | null;

  @Column({ name: 'audit_state', type: 'varchar', length: 20 })
  auditState!: RefundAuditState;

  @Column({ name: 'buyer_refund_fen', ...bigintColumn, nullable: true })
  buyerRefundFen!: number | null;

  @Column({ name: 'reject_reason', type: 'varchar', length: 255, nullable: true })
  rejectReason!: string | null;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'updated_at', ...bigintColumn })
  updatedAt!: number;
}
