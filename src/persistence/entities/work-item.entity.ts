import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

export type WorkItemStatus = 'pending' | 'in_flight' | 'done' | 'parked' | 'abandoned';

/** A durable call to an outside party (Taobao TOP, a supplier), retried until done, parked or abandoned. */
@Entity({ name: 'work_items' })
@Index('uq_work_items_idempotency_key', ['idempotencyKey'], { unique: true })
@Index('idx_work_items_status_next_attempt_at', ['status', 'nextAttemptAt'])
@Index('idx_work_items_order_id_status_id', ['orderId', 'status', 'id'])
export class WorkItemEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ name: 'idempotency_key', type: 'varchar', length: 191 })
  idempotencyKey!: string;

  /** Items of one order run in id order; null for work not tied to an order. */
  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  orderId!: string | null;

  /** e.g. 'taobao.send'. */
  @Column({ type: 'varchar', length: 64 })
  kind!: string;

  /** e.g. 'taobao', 'supplier:zhiyoubao': the circuit breaker this call goes through. */
  @Column({ type: 'varchar', length: 64 })
  upstream!: string;

  /** JSON. */
  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: WorkItemStatus;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'next_attempt_at', ...bigintColumn })
  nextAttemptAt!: number;

  @Column({ name: 'lease_owner', type: 'varchar', length: 64, nullable: true })
  leaseOwner!: string | null;

  @Column({ name: 'lease_until', ...bigintColumn, nullable: true })
  leaseUntil!: number | null;

  /** No personal data: callers redact before storing. */
  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'updated_at', ...bigintColumn })
  updatedAt!: number;
}
