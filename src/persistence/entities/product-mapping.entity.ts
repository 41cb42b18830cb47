import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintColumn } from './column-types';

/**
 * Which supplier ticket type a Taobao item (seller's product code) stands for. Keyed by the seller's codes;
 * `sub_outer_iid` is '' for a mapping of the whole item, because a NULL in a unique key would let two such
 * rows coexist on both MySQL and SQLite.
 */
@Entity({ name: 'product_mappings' })
@Index('idx_product_mappings_supplier_instance', ['supplierInstance'])
export class ProductMappingEntity {
  @PrimaryColumn({ name: 'outer_iid', type: 'varchar', length: 64 })
  outerIid!: string;

  @PrimaryColumn({ name: 'sub_outer_iid', type: 'varchar', length: 64 })
  subOuterIid!: string;

  @Column({ name: 'supplier_instance', type: 'varchar', length: 64 })
  supplierInstance!: string;

  @Column({ name: 'supplier_ticket_type', type: 'varchar', length: 64 })
  supplierTicketType!: string;

  @Column({ name: 'scenic_spot_code', type: 'varchar', length: 64 })
  scenicSpotCode!: string;

  /** Comma-separated CheckMethod values, e.g. 'CODE,QR'. */
  @Column({ name: 'check_methods', type: 'varchar', length: 64 })
  checkMethods!: string;

  @Column({ name: 'real_name_required', type: 'boolean' })
  realNameRequired!: boolean;

  /** 'days_from_visit' (uses validity_days) or 'fixed' (uses validity_start/end, YYYY-MM-DD GMT+8). */
  @Column({ name: 'validity_kind', type: 'varchar', length: 16 })
  validityKind!: string;

  @Column({ name: 'validity_days', type: 'integer', nullable: true })
  validityDays!: number | null;

  @Column({ name: 'validity_start', type: 'varchar', length: 10, nullable: true })
  validityStart!: string | null;

  @Column({ name: 'validity_end', type: 'varchar', length: 10, nullable: true })
  validityEnd!: string | null;

  @Column({ name: 'expiry_refund_allowed', type: 'boolean' })
  expiryRefundAllowed!: boolean;

  @Column({ name: 'expiry_refund_ratio_bp', type: 'integer' })
  expiryRefundRatioBp!: number;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'updated_at', ...bigintColumn })
  updatedAt!: number;
}
