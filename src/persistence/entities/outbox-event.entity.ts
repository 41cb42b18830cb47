import { Column, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn, ID_LENGTH } from './column-types';

export type OutboxStatus = 'pending' | 'published';

/**
 * A Kafka event written in the same transaction as the change it announces, published afterwards. Whether it is
 * still to be published is not a column here: its row in `outbox_pending` says so (see OutboxPendingEntity).
 * Rows stay after publishing, for WatchOrder and operators, until the retention purges them.
 */
@Entity({ name: 'outbox_events' })
@Index('uq_outbox_events_event_id', ['eventId'], { unique: true })
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
}

/**
 * An outbox event not yet acknowledged by the broker: the relay's queue, in id order. Appended with its event, in
 * the same transaction; deleted once the broker acknowledged the event. Kept apart from the wide event rows because
 * recording a publish is then the delete of a narrow row, where updating a status in the event row (its index entry
 * moved, the whole row logged again) cost the database several times as much per event.
 */
@Entity({ name: 'outbox_pending' })
export class OutboxPendingEntity {
  /** The outbox_events row's id. */
  @PrimaryColumn({ type: 'integer' })
  id!: number;

  /** Failed publishes so far. */
  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  /** After a failed publish: not before this instant (epoch ms), and neither are its order's later events. */
  @Column({ name: 'retry_at', ...bigintColumn, nullable: true })
  retryAt!: number | null;
}

/**
 * Which relay publishes the outbox. One relay publishes at a time, so it keeps every order in sequence without
 * writing a claim on each row; the others stand by and take over once the lease runs out (at once when the holder
 * stops cleanly and gives it back).
 */
@Entity({ name: 'outbox_relay_leases' })
export class OutboxRelayLeaseEntity {
  /** The outbox the lease is for; the gateway has one, `outbox_events`. */
  @PrimaryColumn({ type: 'varchar', length: 64 })
  name!: string;

  /** The relay instance holding it (host, pid and a random part). */
  @Column({ type: 'varchar', length: 64 })
  owner!: string;

  /** Epoch ms; at or after this instant anyone may take the lease. */
  @Column({ name: 'lease_until', ...bigintColumn })
  leaseUntil!: number;
}
