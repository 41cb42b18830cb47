/**
 * The gateway's only view of its message broker. Callers (the outbox relay) depend on this interface, never on
 * kafkajs, so the Kafka client can be swapped (kafkajs has had no release since 2023) without touching them.
 */

/** One domain event, ready to leave the outbox. */
export interface OutgoingEvent {
  readonly topic: string;
  /** Partition key: the order id, so all events of one order stay in order on one partition. */
  readonly key: string;
  /** Unique id; consumers deduplicate on it (delivery is at-least-once). */
  readonly eventId: string;
  /** e.g. `voucher.issued`, `voucher.written-off`. */
  readonly type: string;
  readonly schemaVersion: number;
  readonly value: Buffer;
  /** When the event was recorded, epoch ms; becomes the Kafka message timestamp. */
  readonly createdAt: number;
  /** MIME type of `value`; `application/json` when absent. */
  readonly contentType?: string;
}

export interface EventPublisher {
  /**
   * Resolves only once the broker acknowledged every event with acks=all. Rejects with an
   * {@link EventPublishError} on any failure; some events of the batch may then have been written anyway, so the
   * caller keeps them in the outbox and publishes them again (consumers deduplicate by event id).
   * Events of one key are written in the order given.
   */
  publish(events: readonly OutgoingEvent[]): Promise<void>;
  /** Waits for publishes in flight, then releases connections. Later publish() calls reject. Idempotent. */
  close(): Promise<void>;
}

/** Header names every published event carries. */
export const EVENT_HEADERS = {
  eventId: 'event-id',
  eventType: 'event-type',
  schemaVersion: 'schema-version',
  contentType: 'content-type',
} as const;

export const DEFAULT_EVENT_CONTENT_TYPE = 'application/json';

/** A publish that did not complete: broker unreachable, timed out, or refused the write. */
export class EventPublishError extends Error {
  override readonly name: string = 'EventPublishError';
  constructor(
    message: string,
    /** True when trying again later may succeed (broker down, leader moving, timeout). */
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The whole publish did not finish within the publisher's deadline. */
export class EventPublishTimeoutError extends EventPublishError {
  override readonly name: string = 'EventPublishTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`publishing did not complete within ${timeoutMs} ms`, true);
  }
}

/** publish() after close(): a programming error in the caller's lifecycle, never retriable. */
export class PublisherClosedError extends EventPublishError {
  override readonly name: string = 'PublisherClosedError';
  constructor() {
    super('event publisher is closed', false);
  }
}
