/**
 * Section 3, relay: the real OutboxRelay + KafkaEventPublisher draining N pre-inserted outbox rows, beside raw
 * kafkajs producing the same N messages (same keys, values, headers, batches of the relay's size, acks=all) to the
 * same broker; then the created->acknowledged lag while events are appended steadily at a fixed rate.
 * Runs in the bench process against its own database on the bench's MariaDB; the relay has the settings the
 * gateway gives it in app.ts (OUTBOX_BATCH_SIZE's default batch, the relay's default poll interval).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel, type Message } from 'kafkajs';
import type { RecordableHistogram } from 'node:perf_hooks';
import { openDatabase, type Database } from '../src/persistence/database';
import { OutboxEventEntity } from '../src/persistence/entities/outbox-event.entity';
import { appendEvent, ORDER_EVENT_CONTENT_TYPE } from '../src/outbox/outbox';
import { OutboxRelay } from '../src/outbox/outbox-relay';
import { KafkaEventPublisher } from '../src/outbox/kafka-event-publisher';
import { EVENT_HEADERS, type EventPublisher, type OutgoingEvent } from '../src/outbox/event-publisher';
import { configSchema } from '../src/config';
import { newHistogram, recordMs } from './load';

export const RELAY_EVENTS = 10_000;
export const LAG_RATE = 1_000;
/** OUTBOX_BATCH_SIZE's default, which app.ts gives the relay; BENCH_RELAY_BATCH tries another (the raw baseline follows it). */
const RELAY_BATCH = Number(process.env.BENCH_RELAY_BATCH ?? configSchema.shape.OUTBOX_BATCH_SIZE.parse(undefined));
const LAG_MS = 6_000;
const DRAIN_TIMEOUT_MS = 60_000;

export interface RelayFigures {
  readonly events: number;
  readonly relayPerSecond: number;
  readonly rawPerSecond: number;
  readonly lag: RecordableHistogram;
  readonly lagAppended: number;
  readonly lagPublished: number;
}

/** The gateway's publisher, with the moment the broker acknowledged each event recorded. */
class AckTimingPublisher implements EventPublisher {
  published = 0;
  lag: RecordableHistogram | undefined;
  constructor(private readonly inner: EventPublisher) {}
  async publish(events: readonly OutgoingEvent[]): Promise<void> {
    await this.inner.publish(events);
    const now = Date.now();
    if (this.lag) for (const e of events) recordMs(this.lag, now - e.createdAt);
    this.published += events.length;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export async function benchRelay(opts: { dbUrl: string; brokers: string[] }): Promise<RelayFigures> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-bench-relay-'));
  const db = await openDatabase({ url: opts.dbUrl, dataDir, poolSize: 10 });
  const kafka = new Kafka({ clientId: 'bench-raw', brokers: opts.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: false, maxInFlightRequests: 1, allowAutoTopicCreation: true });
  const publisher = new AckTimingPublisher(new KafkaEventPublisher({ clientId: 'bench-relay', brokers: opts.brokers }));
  const relayTopic = 'bench-relay.order-events';
  const rawTopic = 'bench-raw.order-events';
  try {
    await producer.connect();
    // Topics are created on first produce (the mock broker has no admin API); do that before any clock starts.
    await producer.send({ topic: rawTopic, acks: -1, messages: [{ key: 'warm', value: 'warm' }] });
    await producer.send({ topic: relayTopic, acks: -1, messages: [{ key: 'warm', value: 'warm' }] });

    await appendSteadily(db, RELAY_EVENTS, 250);
    const rows = await db.read((em) => em.find(OutboxEventEntity, { order: { id: 'ASC' } }));
    const messages: Message[] = rows.map((r) => ({
      key: r.orderId,
      value: Buffer.from(r.payload, 'base64'),
      timestamp: String(r.createdAt),
      headers: {
        [EVENT_HEADERS.eventId]: r.eventId,
        [EVENT_HEADERS.eventType]: r.type,
        [EVENT_HEADERS.schemaVersion]: String(r.schemaVersion),
        [EVENT_HEADERS.contentType]: ORDER_EVENT_CONTENT_TYPE,
      },
    }));

    // Raw ceiling: the same messages, one acks=all batch of the relay's size at a time.
    const rawStarted = performance.now();
    for (let i = 0; i < messages.length; i += RELAY_BATCH) {
      await producer.send({ topic: rawTopic, acks: -1, messages: messages.slice(i, i + RELAY_BATCH) });
    }
    const rawPerSecond = (messages.length * 1000) / (performance.now() - rawStarted);

    // The relay draining the same rows.
    const drainRelay = new OutboxRelay({ db, publisher, topicPrefix: 'bench-relay.', batchSize: RELAY_BATCH });
    const drainStarted = performance.now();
    drainRelay.start();
    await waitFor(() => publisher.published >= rows.length, DRAIN_TIMEOUT_MS, 'relay did not drain the outbox');
    const relayPerSecond = (publisher.published * 1000) / (performance.now() - drainStarted);
    await drainRelay.stop();

    // Lag at a steady append rate, a fresh relay as a gateway would run it.
    publisher.published = 0;
    publisher.lag = newHistogram();
    const lagRelay = new OutboxRelay({ db, publisher, topicPrefix: 'bench-relay.', batchSize: RELAY_BATCH });
    lagRelay.start();
    const appended = await appendAtRate(db, LAG_RATE, LAG_MS);
    await waitFor(() => publisher.published >= appended, DRAIN_TIMEOUT_MS, 'relay did not catch up with the appends');
    await lagRelay.stop();
    return { events: rows.length, relayPerSecond, rawPerSecond, lag: publisher.lag, lagAppended: appended, lagPublished: publisher.published };
  } finally {
    await producer.disconnect().catch(() => undefined);
    await publisher.close().catch(() => undefined);
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

let orderSeq = 0;
/** Events of a modest number of orders, as real traffic has (several events per order). */
function nextOrderId(): string {
  orderSeq++;
  return `o_bench_relay_${orderSeq % 997}`;
}

function appendBatch(db: Database, n: number): Promise<void> {
  return db.transaction(async (em) => {
    for (let i = 0; i < n; i++) {
      await appendEvent(em, {
        orderId: nextOrderId(),
        type: 'order.issued',
        payload: {
          taobaoOrderId: '1525658026040792',
          supplier: 'sandbox',
          supplierOrderId: `SBX${orderSeq}`,
          quantity: 2,
          maskedCodes: ['12****89'],
          validStartTime: new Date(),
          validEndTime: new Date(Date.now() + 86_400_000),
        },
      });
    }
  });
}

async function appendSteadily(db: Database, total: number, perTransaction: number): Promise<void> {
  for (let done = 0; done < total; done += perTransaction) await appendBatch(db, Math.min(perTransaction, total - done));
}

/** Appends `rate` events per second for `durationMs`, each tick committing what is due in one transaction. */
async function appendAtRate(db: Database, rate: number, durationMs: number): Promise<number> {
  const started = performance.now();
  const total = Math.floor((rate * durationMs) / 1000);
  let appended = 0;
  while (appended < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000)) - appended;
    if (due > 0) {
      await appendBatch(db, due);
      appended += due;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return appended;
}

async function waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
