import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { portableColumns } from './portable-columns';

/**
 * The whole first schema, through typeorm's portable schema API so one migration serves MariaDB/MySQL and the
 * embedded SQLite. Frozen: later changes go in new migrations, never here.
 */
export class InitialSchema1763900000000 implements MigrationInterface {
  name = 'InitialSchema1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { str, txt, int, big, stringId, autoId, index } = portableColumns(queryRunner);

    await queryRunner.createTable(
      new Table({
        name: 'orders',
        columns: [
          stringId(),
          str('taobao_order_id', 32),
          str('token', 64),
          str('num_iid', 32, true),
          str('outer_iid', 64, true),
          str('sub_outer_iid', 64, true),
          str('item_title', 255, true),
          str('sku_properties', 500, true),
          str('seller_id', 32, true),
          str('seller_nick', 64, true),
          big('unit_price_fen'),
          big('total_fee_fen'),
          int('send_type', true),
          int('consume_type', true),
          int('notice_type'),
          str('mobile_masked', 20, true),
          str('mobile_hash', 64, true),
          str('mobile_cipher', 255, true),
          str('id_card_masked', 32, true),
          str('id_card_hash', 64, true),
          str('id_card_cipher', 255, true),
          str('visitor_name', 64, true),
          big('valid_start'),
          big('valid_end'),
          str('supplier', 32, true),
          str('supplier_order_id', 64, true),
          txt('supplier_sub_order_ids', true),
          str('state', 32),
          int('purchased'),
          int('available'),
          int('consumed'),
          int('refund_pending'),
          int('refunded'),
          int('expired'),
          big('last_resend_at', true),
          int('version'),
          big('created_at'),
          big('updated_at'),
        ],
        indices: [
          index('uq_orders_taobao_order_id', ['taobao_order_id'], true),
          index('idx_orders_created_at_id', ['created_at', 'id']),
          index('idx_orders_state', ['state']),
          index('idx_orders_supplier', ['supplier']),
          index('idx_orders_mobile_hash', ['mobile_hash']),
          index('idx_orders_id_card_hash', ['id_card_hash']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'vouchers',
        columns: [
          autoId(),
          str('order_id', 40),
          str('code', 64),
          txt('qr_payload', true),
          int('total'),
          int('remaining'),
          str('status', 16),
          big('created_at'),
        ],
        indices: [
          index('uq_vouchers_order_id_code', ['order_id', 'code'], true),
          index('idx_vouchers_code', ['code']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'write_offs',
        columns: [
          stringId(),
          str('order_id', 40),
          int('voucher_id'),
          str('serial_num', 100),
          str('device_code', 64, true),
          str('posid', 64, true),
          str('check_method', 16),
          str('source', 16),
          str('client_nonce', 64, true),
          int('count'),
          big('admitted_at'),
          str('state', 16),
          big('reversed_at', true),
          str('reverse_reason', 255, true),
        ],
        indices: [
          index('uq_write_offs_serial_num', ['serial_num'], true),
          // NULL nonces never collide (both engines), so only gate retries are deduplicated.
          index('uq_write_offs_device_code_client_nonce', ['device_code', 'client_nonce'], true),
          index('idx_write_offs_order_id', ['order_id']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'refund_requests',
        columns: [
          stringId(),
          str('order_id', 40),
          int('quantity'),
          str('from_bucket', 16),
          str('origin', 24),
          str('caller_request_id', 64, true),
          str('supplier_batch_no', 64, true),
          str('audit_state', 20),
          big('buyer_refund_fen', true),
          str('reject_reason', 255, true),
          big('created_at'),
          big('updated_at'),
        ],
        indices: [
          index('uq_refund_requests_caller_request_id', ['caller_request_id'], true),
          index('idx_refund_requests_supplier_batch_no', ['supplier_batch_no']),
          index('idx_refund_requests_order_id', ['order_id']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'inbound_messages',
        columns: [
          autoId(),
          str('source', 32),
          str('dedup_key', 191),
          str('method', 64),
          big('received_at'),
          int('response_status', true),
          txt('response_body', true),
        ],
        indices: [index('uq_inbound_messages_source_dedup_key', ['source', 'dedup_key'], true)],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'outbox_events',
        columns: [
          autoId(),
          str('event_id', 36),
          str('order_id', 40),
          str('topic', 128),
          str('type', 64),
          int('schema_version'),
          txt('payload'),
          big('created_at'),
          str('status', 16),
          int('attempts', false, 0),
          str('lease_owner', 64, true),
          big('lease_until', true),
          big('published_at', true),
        ],
        indices: [
          index('uq_outbox_events_event_id', ['event_id'], true),
          index('idx_outbox_events_status_id', ['status', 'id']),
          index('idx_outbox_events_order_id_id', ['order_id', 'id']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'work_items',
        columns: [
          autoId(),
          str('idempotency_key', 191),
          str('order_id', 40, true),
          str('kind', 64),
          str('upstream', 64),
          txt('payload'),
          str('status', 16),
          int('attempts', false, 0),
          big('next_attempt_at'),
          str('lease_owner', 64, true),
          big('lease_until', true),
          txt('last_error', true),
          big('created_at'),
          big('updated_at'),
        ],
        indices: [
          index('uq_work_items_idempotency_key', ['idempotency_key'], true),
          index('idx_work_items_status_next_attempt_at', ['status', 'next_attempt_at']),
          index('idx_work_items_order_id_id', ['order_id', 'id']),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'operator_exceptions',
        columns: [
          autoId(),
          str('kind', 64),
          str('order_id', 40, true),
          txt('detail'),
          big('created_at'),
          big('resolved_at', true),
        ],
        indices: [index('idx_operator_exceptions_resolved_at', ['resolved_at'])],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of [
      'operator_exceptions', 'work_items', 'outbox_events', 'inbound_messages',
      'refund_requests', 'write_offs', 'vouchers', 'orders',
    ]) {
      await queryRunner.dropTable(table, true);
    }
  }
}
