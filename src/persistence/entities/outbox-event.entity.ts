import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

export type OutboxStatus = 'pending' | 'published';

/** A Kafka event written in the same transaction as the change it announces, published afterwards. */
@Entity({ name: 'outbox_events' })
@Index('uq_outbox_events_event_id', ['eventId'], { unique: true })
@Index('idx_outbox_events_status_id', ['status', 'id'])
@Index('idx_outbox_events_order_id_id', ['orderId', 'id'])
export class OutboxEventEntity {
  /** Only for ordering: events of one order are published in id order. */
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ name: 'event_id', type: 'varchar', length: 36 })
  eventId!: string;

  /** The Kafka message key. */
  @Column({ name: 'order_id', type: 'varchar', length: ID_LENGTH })
  orderId!: string;

  @Column({ type: 'varchar', length: 128 })
  topic!: string;

  @Column({ type: 'varchar', length: 64 })
  type!: string;

  @Column({ name: 'schema_version', type: 'integer' })
  schemaVersion!: number;

  /** base64 (protobuf) or JSON text. */
  @Column({ type: 'text' })
  payload!: string;

  @Column({ name: 'created_at', ...bigintColumn })
  createdAt!: number;

  @Column({ type: 'varchar', length: 16 })
  status!: OutboxStatus;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'lease_owner', type: 'varchar', length: 64, nullable: true })
  leaseOwner!: string | null;

  @Column({ name: 'lease_until', ...bigintColumn, nullable: true })
  leaseUntil!: number | null;

  @Column({ name: 'published_at', ...bigintColumn, nullable: true })
  publishedAt!: number | null;
}
