import { TableIndex, type QueryRunner, type TableColumnOptions } from 'typeorm';

/**
 * Column builders every migration shares, so one migration serves MariaDB/MySQL and the embedded SQLite alike.
 * On MySQL every text column is utf8mb4 with the binary collation: item titles are Chinese (the server default may
 * be latin1), and codes/keys must compare exactly, as SQLite compares them.
 * Migrations are frozen once released: change these builders only in ways that keep earlier migrations' output.
 */
export function portableColumns(queryRunner: QueryRunner) {
  const type = queryRunner.connection.driver.options.type;
  const text = type === 'mysql' || type === 'mariadb' ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : {};
  const str = (name: string, length: number, nullable = false): TableColumnOptions => ({
    name, type: 'varchar', length: String(length), isNullable: nullable, ...text,
  });
  return {
    str,
    txt: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'text', isNullable: nullable, ...text }),
    int: (name: string, nullable = false, dflt?: number): TableColumnOptions => ({
      name, type: 'integer', isNullable: nullable, ...(dflt === undefined ? {} : { default: dflt }),
    }),
    big: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'bigint', isNullable: nullable }),
    bool: (name: string): TableColumnOptions => ({ name, type: 'boolean', isNullable: false }),
    stringId: (): TableColumnOptions => ({ ...str('id', 40), isPrimary: true }),
    autoId: (): TableColumnOptions => ({ name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' }),
    index: (name: string, columnNames: string[], isUnique = false) => new TableIndex({ name, columnNames, isUnique }),
  };
}
