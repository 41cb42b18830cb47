import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintColumn } from './column-types';

/**
 * Every notice or callback we accepted, keyed by its sender's identity, with the answer we gave: Taobao and
 * the suppliers repeat until acknowledged, and a repeat must get the same answer and no second effect.
 */
@Entity({ name: 'inbound_messages' })
@Index('uq_inbound_messages_source_dedup_key', ['source', 'dedupKey'], { unique: true })
export class InboundMessageEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  /** 'taobao', 'zhiyoubao', 'lianhe', … */
  @Column({ type: 'varchar', length: 32 })
  source!: string;

  // 191 characters keeps a utf8mb4 index within the oldest InnoDB key limit (767 bytes).
  @Column({ name: 'dedup_key', type: 'varchar', length: 191 })
  dedupKey!: string;

  @Column({ type: 'varchar', length: 64 })
  method!: string;

  @Column({ name: 'received_at', ...bigintColumn })
  receivedAt!: number;

  @Column({ name: 'response_status', type: 'integer', nullable: true })
  responseStatus!: number | null;

  @Column({ name: 'response_body', type: 'text', nullable: true })
  responseBody!: string | null;
}
