import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

export type VoucherStatus = 'active' | 'void';

/** One code (and its QR) issued by the supplier for an order; one code may admit several people. */
@Entity({ name: 'vouchers' })
@Index('idx_vouchers_code', ['code'])
@Index('uq_vouchers_order_id_code', ['orderId', 'code'], { unique: true })
export class VoucherEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH })
  orderId!: string;

  @Column({ type: 'varchar', length: 64 })
  code!: string;

  @Column({ name: 'qr_payload', type: 'text', nullable: true })
  qrPayload!: string | null;

  @Column({ type: 'integer' })
  total!: number;

  /** Units still usable; decremented only by a conditional `UPDATE … WHERE remaining >= k`. */
  @Column({ type: 'integer' })
  remaining!: number;

  @Column({ type: 'varchar', length: 16 })
  status!: VoucherStatus;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;
}
