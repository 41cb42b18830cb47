/**
 * The transactional outbox: an event is written in the SAME transaction as the change it announces, so a change
 * is never committed without its event nor an event sent for a change that rolled back. The relay
 * (outbox-relay.ts) publishes the rows afterwards.
 *
 * Stored form: `payload` holds the protobuf binary of a whole `ticketgateway.events.v1.OrderEvent` envelope,
 * base64-encoded; the Kafka message value is exactly those bytes. `topic` holds the event family's logical
 * topic (e.g. `order-events`); the relay adds the deployment's prefix when it publishes.
 */
import { randomUUID } from 'node:crypto';
import { In, type EntityManager } from 'typeorm';
import { systemClock, type Clock } from '../domain/model';
import { redactPersonalData } from '../domain/personal-data';
import {
  EventType,
  OrderEvent,
  type CodeSent,
  type ExceptionRaised,
  type OrderExpired,
  type OrderIssued,
  type OrderIssueFailed,
  type RefundApproved,
  type RefundRejected,
  type RefundRequested,
  type ValidityChanged,
  type WriteOffConfirmed,
  type WriteOffFailed,
  type WriteOffRecorded,
  type WriteOffReversed,
} from '../gen/ticketgateway/events/v1/events';
import { OutboxEventEntity, OutboxPendingEntity, type OutboxStatus } from '../persistence/entities/outbox-event.entity';
import { insertStatement, runStatements, type SqlStatement } from '../persistence/statement-batch';

/** Bumped only when the meaning of a payload changes incompatibly. */
export const ORDER_EVENT_SCHEMA_VERSION = 1;

/** MIME type of a published value; sent as the `content-type` header. */
export const ORDER_EVENT_CONTENT_TYPE = 'application/x-protobuf; messageType=ticketgateway.events.v1.OrderEvent';

/** Logical topic of every order event (the relay publishes to `${prefix}order-events`). */
export const ORDER_EVENTS_TOPIC = 'order-events';

/** Dotted event type (the `type` column and `event-type` header) -> its payload message. */
export interface OrderEventPayloads {
  'order.issued': OrderIssued;
  'order.issue-failed': OrderIssueFailed;
  'code.sent': CodeSent;
  'write-off.recorded': WriteOffRecorded;
  'write-off.confirmed': WriteOffConfirmed;
  'write-off.failed': WriteOffFailed;
  'write-off.reversed': WriteOffReversed;
  'refund.requested': RefundRequested;
  'refund.approved': RefundApproved;
  'refund.rejected': RefundRejected;
  'validity.changed': ValidityChanged;
  'order.expired': OrderExpired;
  'exception.raised': ExceptionRaised;
}

export type OrderEventType = keyof OrderEventPayloads;

type PayloadField = Exclude<keyof OrderEvent, 'eventId' | 'type' | 'orderId' | 'occurredAt' | 'schemaVersion'>;

/** Each dotted type's enum value, oneof field and topic family. */
export const ORDER_EVENT_TYPES: { readonly [K in OrderEventType]: { readonly enumValue: EventType; readonly field: PayloadField; readonly topic: string } } = {
  'order.issued': { enumValue: EventType.EVENT_TYPE_ORDER_ISSUED, field: 'orderIssued', topic: ORDER_EVENTS_TOPIC },
  'order.issue-failed': { enumValue: EventType.EVENT_TYPE_ORDER_ISSUE_FAILED, field: 'orderIssueFailed', topic: ORDER_EVENTS_TOPIC },
  'code.sent': { enumValue: EventType.EVENT_TYPE_CODE_SENT, field: 'codeSent', topic: ORDER_EVENTS_TOPIC },
  'write-off.recorded': { enumValue: EventType.EVENT_TYPE_WRITE_OFF_RECORDED, field: 'writeOffRecorded', topic: ORDER_EVENTS_TOPIC },
  'write-off.confirmed': { enumValue: EventType.EVENT_TYPE_WRITE_OFF_CONFIRMED, field: 'writeOffConfirmed', topic: ORDER_EVENTS_TOPIC },
  'write-off.failed': { enumValue: EventType.EVENT_TYPE_WRITE_OFF_FAILED, field: 'writeOffFailed', topic: ORDER_EVENTS_TOPIC },
  'write-off.reversed': { enumValue: EventType.EVENT_TYPE_WRITE_OFF_REVERSED, field: 'writeOffReversed', topic: ORDER_EVENTS_TOPIC },
  'refund.requested': { enumValue: EventType.EVENT_TYPE_REFUND_REQUESTED, field: 'refundRequested', topic: ORDER_EVENTS_TOPIC },
  'refund.approved': { enumValue: EventType.EVENT_TYPE_REFUND_APPROVED, field: 'refundApproved', topic: ORDER_EVENTS_TOPIC },
  'refund.rejected': { enumValue: EventType.EVENT_TYPE_REFUND_REJECTED, field: 'refundRejected', topic: ORDER_EVENTS_TOPIC },
  'validity.changed': { enumValue: EventType.EVENT_TYPE_VALIDITY_CHANGED, field: 'validityChanged', topic: ORDER_EVENTS_TOPIC },
  'order.expired': { enumValue: EventType.EVENT_TYPE_ORDER_EXPIRED, field: 'orderExpired', topic: ORDER_EVENTS_TOPIC },
  'exception.raised': { enumValue: EventType.EVENT_TYPE_EXCEPTION_RAISED, field: 'exceptionRaised', topic: ORDER_EVENTS_TOPIC },
};

export interface AppendEventInput<K extends OrderEventType> {
  /** The Kafka key; events of one order are published in the order they were appended. */
  readonly orderId: string;
  readonly type: K;
  readonly payload: OrderEventPayloads[K];
  /** Defaults to the clock's now. */
  readonly occurredAt?: number;
}

export interface AppendedEvent {
  readonly id: number;
  readonly eventId: string;
  readonly topic: string;
}

/** An event type we do not know; a programming error. */
export class UnknownEventTypeError extends Error {
  override readonly name = 'UnknownEventTypeError';
  constructor(type: string) {
    super(`unknown order event type "${type}"`);
  }
}

/**
 * Writes one event into the outbox inside the caller's transaction (`em` must be the transaction's manager).
 * Events of one order must be appended by transactions that serialize on that order (they lock its row), so
 * outbox ids follow the order's history; the relay publishes each order's events in id order.
 */
export async function appendEvent<K extends OrderEventType>(em: EntityManager, input: AppendEventInput<K>, clock: Clock = systemClock): Promise<AppendedEvent> {
  const { row, eventId, topic } = outboxEventRow(input, clock);
  const [inserted] = await runStatements(em, [insertStatement(em, OutboxEventEntity, row), queuedStatement([eventId])]);
  return { id: inserted!.insertId, eventId, topic };
}

/**
 * The same events as statements, for a transaction that sends its writes together (statement-batch.ts): one INSERT
 * of the event rows, then their entries in the relay's queue (`outbox_pending`). Both must run, in this order; the
 * same ordering rule as appendEvent applies (each order's row is locked by the transaction).
 */
export function appendEventStatements(em: EntityManager, inputs: ReadonlyArray<AppendEventInput<OrderEventType>>, clock: Clock = systemClock): SqlStatement[] {
  if (inputs.length === 0) return [];
  const rows = inputs.map((input) => outboxEventRow(input, clock));
  return [insertStatement(em, OutboxEventEntity, rows.map((r) => r.row)), queuedStatement(rows.map((r) => r.eventId))];
}

/** Queues appended events for the relay, found by their event ids (unique) so it works for multi-row inserts too. */
function queuedStatement(eventIds: readonly string[]): SqlStatement {
  return { sql: `INSERT INTO outbox_pending (id) SELECT id FROM outbox_events WHERE event_id IN (${eventIds.map(() => '?').join(', ')})`, params: eventIds };
}

function outboxEventRow<K extends OrderEventType>(input: AppendEventInput<K>, clock: Clock): { row: Omit<OutboxEventEntity, 'id'>; eventId: string; topic: string } {
  const spec = ORDER_EVENT_TYPES[input.type];
  if (!spec) throw new UnknownEventTypeError(String(input.type));
  if (input.orderId === '') throw new Error('appendEvent: orderId is required (it is the Kafka key)');
  const now = clock.now();
  const eventId = randomUUID();
  const envelope: OrderEvent = {
    eventId,
    type: spec.enumValue,
    orderId: input.orderId,
    occurredAt: new Date(input.occurredAt ?? now),
    schemaVersion: ORDER_EVENT_SCHEMA_VERSION,
    [spec.field]: input.payload,
  };
  const bytes = OrderEvent.encode(envelope).finish();
  const row = {
    eventId,
    orderId: input.orderId,
    topic: spec.topic,
    type: input.type,
    schemaVersion: ORDER_EVENT_SCHEMA_VERSION,
    payload: Buffer.from(bytes).toString('base64'),
    createdAt: now,
  };
  return { row, eventId, topic: spec.topic };
}

/** Decodes the stored payload of an outbox row (for operators, tests and consumers alike). */
export function decodeOrderEvent(bytesOrBase64: Uint8Array | string): OrderEvent {
  const bytes = typeof bytesOrBase64 === 'string' ? Buffer.from(bytesOrBase64, 'base64') : bytesOrBase64;
  return OrderEvent.decode(bytes);
}

/** The dotted type name of an enum value, for readers of decoded events. */
export function eventTypeName(value: EventType): OrderEventType | undefined {
  for (const [name, spec] of Object.entries(ORDER_EVENT_TYPES)) if (spec.enumValue === value) return name as OrderEventType;
  return undefined;
}

/** The event that tells consumers an operator must look at something; detail is redacted of personal data. */
export function exceptionRaised(kind: string, detail: string, workItemId?: number): ExceptionRaised {
  return { kind, detail: redactPersonalData(detail), workItemId: String(workItemId ?? 0) };
}

export interface StoredOutboxEvent {
  readonly id: number;
  readonly eventId: string;
  readonly orderId: string;
  readonly topic: string;
  readonly type: string;
  /** `pending` until the broker acknowledged it. */
  readonly status: OutboxStatus;
  /** Failed publishes of a pending event. */
  readonly attempts: number;
  readonly createdAt: number;
  readonly event: OrderEvent;
}

/** One order's events as stored, oldest first: queryable even when no broker is configured. */
export async function listOrderEvents(em: EntityManager, orderId: string): Promise<StoredOutboxEvent[]> {
  const rows = await em.find(OutboxEventEntity, { where: { orderId }, order: { id: 'ASC' } });
  const pending = rows.length === 0 ? [] : await em.find(OutboxPendingEntity, { where: { id: In(rows.map((r) => r.id)) } });
  const attemptsOf = new Map(pending.map((p) => [Number(p.id), p.attempts]));
  return rows.map((r) => ({
    id: Number(r.id),
    eventId: r.eventId,
    orderId: r.orderId,
    topic: r.topic,
    type: r.type,
    status: attemptsOf.has(Number(r.id)) ? 'pending' : 'published',
    attempts: attemptsOf.get(Number(r.id)) ?? 0,
    createdAt: r.createdAt,
    event: decodeOrderEvent(r.payload),
  }));
}
