import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

/** Something a person must look at (an unmapped outside state, a parked call); never a silent guess. */
@Entity({ name: 'operator_exceptions' })
@Index('idx_operator_exceptions_resolved_at', ['resolvedAt'])
export class OperatorExceptionEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ type: 'varchar', length: 64 })
  kind!: string;

  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  orderId!: string | null;

  /** Free text for operators; no personal data. */
  @Column({ type: 'text' })
  detail!: string;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'resolved_at', ...bigintColumn, nullable: true })
  resolvedAt!: number | null;
}
