import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from '../persistence/entities/column-types';

export type OfflineAdmissionOutcome = 'admitted' | 'conflict' | 'refused';

/** One admission a gate uploaded after being offline; unique per device + nonce, so a re-upload does nothing. */
@Entity({ name: 'gate_offline_admissions' })
@Index('uq_gate_offline_admissions_device_nonce', ['deviceCode', 'clientNonce'], { unique: true })
export class GateOfflineAdmissionEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ name: 'device_code', type: 'varchar', length: 64 })
  deviceCode!: string;

  @Column({ name: 'client_nonce', type: 'varchar', length: 64 })
  clientNonce!: string;

  @Column({ name: 'admitted_at', ...bigintColumn })
  admittedAt!: number;

  @Column({ name: 'received_at', ...bigintColumn })
  receivedAt!: number;

  @Column({ type: 'integer' })
  count!: number;

  @Column({ type: 'varchar', length: 16 })
  outcome!: OfflineAdmissionOutcome;

  /** The AdmissionReason it came to. */
  @Column({ type: 'varchar', length: 32 })
  result!: string;

  @Column({ name: 'write_off_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  writeOffId!: string | null;

  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  orderId!: string | null;
}
