import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { portableColumns } from './portable-columns';

/**
 * The outbox's queue moves out of the event rows: `outbox_pending` holds the events the broker has not acknowledged
 * (with their failed attempts and retry instant), so recording a publish deletes a narrow row instead of rewriting a
 * wide one and moving its status index entry. And one relay publishes at a time, under `outbox_relay_leases`,
 * instead of every relay writing a claim on each row.
 */
export class OutboxPending1795460000000 implements MigrationInterface {
  name = 'OutboxPending1795460000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { str, int, big } = portableColumns(queryRunner);
    await queryRunner.createTable(
      new Table({ name: 'outbox_pending', columns: [{ ...int('id'), isPrimary: true }, int('attempts', false, 0), big('retry_at', true)] }),
      true,
    );
    await queryRunner.query(
      `INSERT INTO outbox_pending (id, attempts, retry_at) SELECT id, attempts, lease_until FROM outbox_events WHERE status = 'pending'`,
    );
    await queryRunner.dropIndex('outbox_events', 'idx_outbox_events_status_id');
    await queryRunner.dropColumns('outbox_events', ['status', 'attempts', 'lease_owner', 'lease_until', 'published_at']);
    await queryRunner.createTable(
      new Table({ name: 'outbox_relay_leases', columns: [{ ...str('name', 64), isPrimary: true }, str('owner', 64), big('lease_until')] }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const { str, int, big } = portableColumns(queryRunner);
    await queryRunner.dropTable('outbox_relay_leases', true);
    await queryRunner.addColumns('outbox_events', [
      new TableColumn({ ...str('status', 16), default: "'published'" }),
      new TableColumn(int('attempts', false, 0)),
      new TableColumn(str('lease_owner', 64, true)),
      new TableColumn(big('lease_until', true)),
      new TableColumn(big('published_at', true)),
    ]);
    await queryRunner.query(
      `UPDATE outbox_events SET status = 'pending', attempts = (SELECT p.attempts FROM outbox_pending p WHERE p.id = outbox_events.id),
        lease_until = (SELECT p.retry_at FROM outbox_pending p WHERE p.id = outbox_events.id)
        WHERE id IN (SELECT id FROM outbox_pending)`,
    );
    await queryRunner.createIndex('outbox_events', new TableIndex({ name: 'idx_outbox_events_status_id', columnNames: ['status', 'id'] }));
    await queryRunner.dropTable('outbox_pending', true);
  }
}
