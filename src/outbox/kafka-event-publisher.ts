/**
 * EventPublisher on kafkajs. Kept deliberately thin: connection handling, headers, batching by topic, and a hard
 * deadline per publish. Everything else (what to publish, retry cadence) belongs to the outbox relay.
 */
import { CompressionTypes, Kafka, KafkaJSError, KafkaJSProtocolError, logLevel as KafkaJsLogLevel, Partitioners, type LogEntry, type Message, type Producer, type TopicMessages } from 'kafkajs';
import {
  DEFAULT_EVENT_CONTENT_TYPE,
  EVENT_HEADERS,
  EventPublishError,
  EventPublishTimeoutError,
  PublisherClosedError,
  type EventPublisher,
  type OutgoingEvent,
} from './event-publisher';

export type KafkaLogLevel = 'error' | 'warn' | 'info' | 'debug';

/** One kafkajs log line, handed to the gateway's logger instead of kafkajs' own console output. */
export interface KafkaLogRecord {
  readonly level: KafkaLogLevel;
  /** kafkajs component, e.g. `Connection`, `BrokerPool`, `Producer`. */
  readonly namespace: string;
  readonly message: string;
  /** kafkajs' structured extras (broker, clientId, error, retryCount, ...). Never message payloads. */
  readonly fields: Readonly<Record<string, unknown>>;
}

export type KafkaLogSink = (record: KafkaLogRecord) => void;

export interface KafkaEventPublisherOptions {
  readonly clientId: string;
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /** Where kafkajs' log output goes; dropped when absent. */
  readonly log?: KafkaLogSink;
  /** Lowest kafkajs level passed to `log`. Default `warn`. */
  readonly logLevel?: KafkaLogLevel;
  /** TCP connect timeout per broker. Default 3 s. */
  readonly connectionTimeoutMs?: number;
  /** Timeout of one Kafka request, including the acks=all wait on the broker. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Upper bound for a whole publish() (lazy connect, metadata, retries, acks). Default 15 s. */
  readonly publishTimeoutMs?: number;
  /** kafkajs retries of a failed request inside one publish(). Default 3. */
  readonly retries?: number;
  readonly compression?: 'none' | 'gzip';
}

const LEVELS: Record<KafkaLogLevel, number> = {
  error: KafkaJsLogLevel.ERROR,
  warn: KafkaJsLogLevel.WARN,
  info: KafkaJsLogLevel.INFO,
  debug: KafkaJsLogLevel.DEBUG,
};

function labelOf(level: number): KafkaLogLevel {
  if (level <= KafkaJsLogLevel.ERROR) return 'error';
  if (level <= KafkaJsLogLevel.WARN) return 'warn';
  if (level <= KafkaJsLogLevel.INFO) return 'info';
  return 'debug';
}

/** One connected (or connecting) producer. Replaced wholesale after any failure. */
interface ProducerSession {
  readonly producer: Producer;
  readonly connected: Promise<void>;
}

export class KafkaEventPublisher implements EventPublisher {
  private readonly kafka: Kafka;
  private readonly publishTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly retries: number;
  private readonly compression: CompressionTypes;
  private session: ProducerSession | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Publishes and disconnects still running; close() waits for them (each is bounded by a deadline). */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(options: KafkaEventPublisherOptions) {
    if (options.brokers.length === 0) throw new Error('KafkaEventPublisher needs at least one broker');
    this.publishTimeoutMs = options.publishTimeoutMs ?? 15_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.compression = options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    const sink = options.log;
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: this.requestTimeoutMs,
      enforceRequestTimeout: true,
      retry: { retries: this.retries, initialRetryTime: 100, maxRetryTime: 2_000 },
      logLevel: sink ? LEVELS[options.logLevel ?? 'warn'] : KafkaJsLogLevel.NOTHING,
      logCreator: () => (entry: LogEntry) => {
        if (!sink) return;
        const { message, timestamp: _timestamp, logger: _logger, ...fields } = entry.log;
        try {
          sink({ level: labelOf(entry.level), namespace: entry.namespace, message: String(message), fields });
        } catch {
          /* a broken log sink must not break publishing */
        }
      },
    });
  }

  async publish(events: readonly OutgoingEvent[]): Promise<void> {
    if (this.closed) throw new PublisherClosedError();
    if (events.length === 0) return;
    const topicMessages = toTopicMessages(events);
    const session = this.currentSession();
    const attempt = (async () => {
      await session.connected;
      await session.producer.sendBatch({ topicMessages, acks: -1, timeout: this.requestTimeoutMs, compression: this.compression });
    })();
    // If the deadline wins, the abandoned attempt must not surface as an unhandled rejection.
    attempt.catch(() => undefined);

    const bounded = withDeadline(attempt, this.publishTimeoutMs);
    this.track(bounded);
    try {
      await bounded;
    } catch (error) {
      // Whatever broke (connection, leader change, timeout), start from a fresh connection next time.
      this.discard(session);
      throw toPublishError(error, events.length, topicMessages);
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      await Promise.allSettled([...this.pending]);
      const session = this.session;
      if (session) this.discard(session);
      await Promise.allSettled([...this.pending]);
    })();
    return this.closing;
  }

  /** Lazily creates and connects a producer; a later publish reuses it until it fails. */
  private currentSession(): ProducerSession {
    if (!this.session) {
      const producer = this.kafka.producer({
        // The mock broker (and plenty of real clusters' ACLs) reject idempotent producers; consumers dedupe by event id.
        idempotent: false,
        // One request in flight per broker, so a retried batch cannot overtake a later one: per-key order holds.
        maxInFlightRequests: 1,
        allowAutoTopicCreation: true,
        // The Java-compatible murmur2 partitioner: same key -> same partition as any JVM producer would pick.
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { retries: this.retries, initialRetryTime: 100, maxRetryTime: 2_000 },
      });
      const connected = producer.connect();
      connected.catch(() => undefined);
      this.session = { producer, connected };
    }
    return this.session;
  }

  private discard(session: ProducerSession): void {
    if (this.session === session) this.session = undefined;
    const disconnect = withDeadline(
      session.connected.catch(() => undefined).then(() => session.producer.disconnect()),
      this.publishTimeoutMs,
    ).catch(() => undefined);
    this.track(disconnect);
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    const forget = () => this.pending.delete(work);
    work.then(forget, forget);
  }
}

function toTopicMessages(events: readonly OutgoingEvent[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const event of events) {
    if (!event.topic) throw new EventPublishError(`event ${event.eventId} has no topic`, false);
    if (!event.key) throw new EventPublishError(`event ${event.eventId} has no key`, false);
    if (!event.eventId) throw new EventPublishError(`an event of type ${event.type} has no event id`, false);
    let messages = byTopic.get(event.topic);
    if (!messages) byTopic.set(event.topic, (messages = []));
    // Array order is write order within a partition, which is what keeps one order's events in sequence.
    messages.push({
      key: event.key,
      value: event.value,
      timestamp: String(event.createdAt),
      headers: {
        [EVENT_HEADERS.eventId]: event.eventId,
        [EVENT_HEADERS.eventType]: event.type,
        [EVENT_HEADERS.schemaVersion]: String(event.schemaVersion),
        [EVENT_HEADERS.contentType]: event.contentType ?? DEFAULT_EVENT_CONTENT_TYPE,
      },
    });
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

function withDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EventPublishTimeoutError(timeoutMs)), timeoutMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Maps kafkajs failures onto our typed error; only protocol errors the broker calls permanent are non-retriable. */
function toPublishError(error: unknown, count: number, topicMessages: readonly TopicMessages[]): EventPublishError {
  if (error instanceof EventPublishError) return error;
  let retriable = true;
  for (let cause: unknown = error, depth = 0; cause && depth < 5; depth++) {
    if (cause instanceof KafkaJSProtocolError) {
      retriable = cause.retriable;
      break;
    }
    cause = cause instanceof KafkaJSError ? ((cause as { originalError?: unknown }).originalError ?? cause.cause) : (cause as { cause?: unknown }).cause;
  }
  const topics = topicMessages.map((t) => t.topic).join(', ');
  const reason = error instanceof Error ? error.message : String(error);
  return new EventPublishError(`publishing ${count} event(s) to ${topics} failed: ${reason}`, retriable, { cause: error });
}
