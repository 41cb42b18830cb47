import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { CheckMethod } from '../../domain/model';
import { bigintColumn, ID_LENGTH } from './column-types';

export type WriteOffSource = 'gate' | 'gate_offline' | 'supplier';
export type WriteOffState = 'recorded' | 'confirmed' | 'failed' | 'reversed' | 'conflict';

/** One admission (核销): `count` units of one voucher, reported to Taobao under `serial_num`. */
@Entity({ name: 'write_offs' })
@Index('idx_write_offs_order_id', ['orderId'])
@Index('uq_write_offs_serial_num', ['serialNum'], { unique: true })
@Index('uq_write_offs_device_code_client_nonce', ['deviceCode', 'clientNonce'], { unique: true })
export class WriteOffEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH })
  orderId!: string;

  @Column({ name: 'voucher_id', type: 'integer' })
  voucherId!: number;

  /** The TOP consume serial (≤100 chars), reused by a reverse. */
  @Column({ name: 'serial_num', type: 'varchar', length: 100 })
  serialNum!: string;

  /** Null when a supplier reported the admission from its own gate. */
  @Column({ name: 'device_code', type: 'varchar', length: 64, nullable: true })
  deviceCode!: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  posid!: string | null;

  @Column({ name: 'check_method', type: 'varchar', length: 16 })
  checkMethod!: CheckMethod;

  @Column({ type: 'varchar', length: 16 })
  source!: WriteOffSource;

  /** The gate's own idempotency key, so a retried (or offline-replayed) admission is recorded once. */
  @Column({ name: 'client_nonce', type: 'varchar', length: 64, nullable: true })
  clientNonce!: string | null;

  @Column({ type: 'integer' })
  count!: number;

  @Column({ name: 'admitted_at', ...bigintColumn })
  admittedAt!: number;

  @Column({ type: 'varchar', length: 16 })
  state!: WriteOffState;

  @Column({ name: 'reversed_at', ...bigintColumn, nullable: true })
  reversedAt!: number | null;

  @Column({ name: 'reverse_reason', type: 'varchar', length: 255, nullable: true })
  reverseReason!: string | null;
}
