import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { portableColumns } from './portable-columns';

/** The product mapping table (Taobao item -> supplier ticket type), see ProductMappingEntity. */
export class ProductMappings1795443247220 implements MigrationInterface {
  name = 'ProductMappings1795443247220';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { str, int, bool, big } = portableColumns(queryRunner);

    await queryRunner.createTable(
      new Table({
        name: 'product_mappings',
        columns: [
          { ...str('outer_iid', 64), isPrimary: true },
          { ...str('sub_outer_iid', 64), isPrimary: true },
          str('supplier_instance', 64),
          str('supplier_ticket_type', 64),
          str('scenic_spot_code', 64),
          str('check_methods', 64),
          bool('real_name_required'),
          str('validity_kind', 16),
          int('validity_days', true),
          str('validity_start', 10, true),
          str('validity_end', 10, true),
          bool('expiry_refund_allowed'),
          int('expiry_refund_ratio_bp'),
          big('created_at'),
          big('updated_at'),
        ],
        indices: [new TableIndex({ name: 'idx_product_mappings_supplier_instance', columnNames: ['supplier_instance'] })],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('product_mappings', true);
  }
}
