import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintColumn } from '../persistence/entities/column-types';

export type GateDeviceStatus = 'enabled' | 'revoked';

/** A ticket gate or handheld scanner of one scenic spot (机具编码), with the hash of its secret. */
@Entity({ name: 'gate_devices' })
@Index('idx_gate_devices_scenic_spot_code', ['scenicSpotCode'])
export class GateDeviceEntity {
  @PrimaryColumn({ name: 'device_code', type: 'varchar', length: 64 })
  deviceCode!: string;

  @Column({ name: 'supplier_enterprise_code', type: 'varchar', length: 64 })
  supplierEnterpriseCode!: string;

  @Column({ name: 'scenic_spot_code', type: 'varchar', length: 64 })
  scenicSpotCode!: string;

  /** Comma-separated CheckMethod values. */
  @Column({ name: 'allowed_check_methods', type: 'varchar', length: 64 })
  allowedCheckMethods!: string;

  /** Taobao's posid of this device, sent on consume and reverse. */
  @Column({ type: 'varchar', length: 64 })
  posid!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: GateDeviceStatus;

  @Column({ name: 'secret_hash', type: 'varchar', length: 64 })
  secretHash!: string;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ name: 'rotated_at', ...bigintColumn, nullable: true })
  rotatedAt!: number | null;

  @Column({ name: 'revoked_at', ...bigintColumn, nullable: true })
  revokedAt!: number | null;
}
