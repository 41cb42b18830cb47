import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * An order's open work items straight from an index: (order_id, status, id) instead of (order_id, id). Every claim
 * asks, for each candidate, which is the first open item of its order; through (order_id, id) that read every
 * finished item the order ever had (a ticket of 200 admissions: 200 rows per candidate), through this only the
 * open ones. Queries by order and id still use it (the status part in between only costs a sort of one order's items).
 */
export class WorkItemsOpenByOrder1795470000000 implements MigrationInterface {
  name = 'WorkItemsOpenByOrder1795470000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('work_items', new TableIndex({ name: 'idx_work_items_order_id_status_id', columnNames: ['order_id', 'status', 'id'] }));
    await queryRunner.dropIndex('work_items', 'idx_work_items_order_id_id');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('work_items', new TableIndex({ name: 'idx_work_items_order_id_id', columnNames: ['order_id', 'id'] }));
    await queryRunner.dropIndex('work_items', 'idx_work_items_order_id_status_id');
  }
}
