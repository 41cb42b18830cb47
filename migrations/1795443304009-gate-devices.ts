import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { portableColumns } from './portable-columns';

/**
 * Gate devices (ticket gates, handheld scanners) and every admission a gate uploaded after being offline
 * (one row per device + nonce, so a repeated upload has no second effect even when no write-off was recorded).
 */
export class GateDevices1795443304009 implements MigrationInterface {
  name = 'GateDevices1795443304009';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { str, int, big } = portableColumns(queryRunner);

    await queryRunner.createTable(
      new Table({
        name: 'gate_devices',
        columns: [
          { ...str('device_code', 64), isPrimary: true },
          str('supplier_enterprise_code', 64),
          str('scenic_spot_code', 64),
          // Comma-separated CheckMethod values, e.g. 'CODE,QR'.
          str('allowed_check_methods', 64),
          str('posid', 64),
          str('status', 16),
          // sha256 hex of the device secret; the secret itself is never stored.
          str('secret_hash', 64),
          big('created_at'),
          big('rotated_at', true),
          big('revoked_at', true),
        ],
        indices: [new TableIndex({ name: 'idx_gate_devices_scenic_spot_code', columnNames: ['scenic_spot_code'] })],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'gate_offline_admissions',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          str('device_code', 64),
          str('client_nonce', 64),
          big('admitted_at'),
          big('received_at'),
          int('count'),
          // 'admitted' | 'conflict' | 'refused'
          str('outcome', 16),
          str('result', 32),
          str('write_off_id', 40, true),
          str('order_id', 40, true),
        ],
        indices: [
          new TableIndex({ name: 'uq_gate_offline_admissions_device_nonce', columnNames: ['device_code', 'client_nonce'], isUnique: true }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('gate_offline_admissions', true);
    await queryRunner.dropTable('gate_devices', true);
  }
}
