import { randomUUID } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventPublishError, EventPublishTimeoutError, PublisherClosedError, type OutgoingEvent } from '../../src/outbox/event-publisher';
import { KafkaEventPublisher, type KafkaLogRecord } from '../../src/outbox/kafka-event-publisher';
import { consumeAll, testKafkaBrokers, type ConsumedMessage } from '../support/kafka';
import { freePort } from '../support/services';
import { startForwarder } from './tcp-forwarder';

const brokers = testKafkaBrokers();

function uniqueTopic(name: string): string {
  return `test.${name}.${randomUUID().slice(0, 8)}`;
}

function voucherEvent(topic: string, orderId: string, seq: number, type = 'voucher.issued'): OutgoingEvent {
  const eventId = randomUUID();
  return {
    topic,
    key: orderId,
    eventId,
    type,
    schemaVersion: 3,
    value: Buffer.from(JSON.stringify({ eventId, orderId, seq })),
    createdAt: 1_767_225_600_000 + seq * 1_000,
  };
}

/** A TCP server on 127.0.0.1 that holds connections open and never answers: a hung broker. */
async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => closeServer(server, sockets),
  };
}


function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function byPartitionAndOffset(a: ConsumedMessage, b: ConsumedMessage): number {
  return a.partition - b.partition || (BigInt(a.offset) < BigInt(b.offset) ? -1 : BigInt(a.offset) > BigInt(b.offset) ? 1 : 0);
}

describe('KafkaEventPublisher against a Kafka-protocol broker', () => {
  const publishers: KafkaEventPublisher[] = [];
  const newPublisher = (options: Partial<ConstructorParameters<typeof KafkaEventPublisher>[0]> = {}) => {
    const publisher = new KafkaEventPublisher({ clientId: 'ticket-gateway-test', brokers, ...options });
    publishers.push(publisher);
    return publisher;
  };
  after(async () => {
    await Promise.all(publishers.map((publisher) => publisher.close()));
  });

  it('delivers 200 events over 20 order keys in several batches, with headers, keeping each order in sequence', async () => {
    const topic = uniqueTopic('vouchers');
    const auditTopic = uniqueTopic('refund-audits');
    const orderIds = Array.from({ length: 20 }, (_, i) => `TB${String(9_000_000 + i)}`);
    const events: OutgoingEvent[] = [];
    // Interleave orders so each batch mixes many keys, like an outbox drained by creation time.
    for (let seq = 0; seq < 10; seq++) for (const orderId of orderIds) events.push(voucherEvent(topic, orderId, seq));
    const audits = orderIds.slice(0, 5).map((orderId, i) => voucherEvent(auditTopic, orderId, i, 'refund-audit.requested'));

    const logs: KafkaLogRecord[] = [];
    const publisher = newPublisher({ log: (record) => logs.push(record) });
    const batchSizes = [1, 24, 50, 25, 60, 40];
    assert.equal(batchSizes.reduce((sum, size) => sum + size, 0), events.length);
    let from = 0;
    for (const [i, size] of batchSizes.entries()) {
      // One batch spans two topics, so grouping by topic is exercised too.
      const batch = i === 2 ? [...events.slice(from, from + size), ...audits] : events.slice(from, from + size);
      await publisher.publish(batch);
      from += size;
    }

    // Both consumers join their groups in parallel: the mock's first join alone takes ~3 s.
    const [received, auditMessages] = await Promise.all([
      consumeAll(brokers, topic, { count: events.length, timeoutMs: 30_000, settleMs: 500 }),
      consumeAll(brokers, auditTopic, { count: audits.length, timeoutMs: 30_000, settleMs: 500 }),
    ]);
    assert.equal(received.length, events.length, 'every event exactly once');
    const sent = new Map(events.map((event) => [event.eventId, event]));
    for (const message of received) {
      const eventId = message.headers['event-id'];
      assert.ok(eventId, 'event-id header present');
      const event = sent.get(eventId);
      assert.ok(event, `unknown or duplicate event ${eventId}`);
      sent.delete(eventId);
      assert.equal(message.key, event.key);
      assert.deepEqual(message.value, event.value);
      assert.deepEqual(message.headers, {
        'event-id': event.eventId,
        'event-type': 'voucher.issued',
        'schema-version': '3',
        'content-type': 'application/json',
      });
      assert.equal(message.timestamp, event.createdAt);
    }
    assert.equal(sent.size, 0);

    const partitionsByKey = new Map<string, Set<number>>();
    const seqsByKey = new Map<string, number[]>();
    for (const message of [...received].sort(byPartitionAndOffset)) {
      const { seq } = JSON.parse(message.value!.toString('utf8')) as { seq: number };
      (partitionsByKey.get(message.key!) ?? partitionsByKey.set(message.key!, new Set()).get(message.key!)!).add(message.partition);
      (seqsByKey.get(message.key!) ?? seqsByKey.set(message.key!, []).get(message.key!)!).push(seq);
    }
    assert.equal(seqsByKey.size, 20);
    for (const orderId of orderIds) {
      assert.equal(partitionsByKey.get(orderId)!.size, 1, `order ${orderId} spread over several partitions`);
      assert.deepEqual(seqsByKey.get(orderId), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `order ${orderId} out of sequence`);
    }
    // The keys really are spread: with 20 keys over the mock's 4 partitions, more than one is used.
    assert.ok(new Set(received.map((m) => m.partition)).size > 1);

    assert.deepEqual(auditMessages.map((m) => m.headers['event-id']).sort(), audits.map((e) => e.eventId).sort());
    assert.ok(auditMessages.every((m) => m.headers['event-type'] === 'refund-audit.requested'));
    assert.deepEqual(logs.filter((record) => record.level === 'error'), [], 'no kafkajs errors on the happy path');
  });

  it('rejects publish after close, and close is idempotent', async () => {
    const topic = uniqueTopic('closed');
    const publisher = newPublisher();
    await publisher.publish([voucherEvent(topic, 'TB1', 0)]);
    await publisher.close();
    await publisher.close();
    await assert.rejects(publisher.publish([voucherEvent(topic, 'TB1', 1)]), PublisherClosedError);
    const received = await consumeAll(brokers, topic, { count: 1, timeoutMs: 30_000, settleMs: 300 });
    assert.equal(received.length, 1, 'only the event published before close');
  });

  it('rejects events without a key or topic before touching the broker', async () => {
    const publisher = newPublisher({ brokers: [`127.0.0.1:${await freePort()}`] });
    const keyless = { ...voucherEvent('t', 'TB1', 0), key: '' };
    await assert.rejects(publisher.publish([keyless]), (error: unknown) => error instanceof EventPublishError && !error.retriable);
    await publisher.publish([]); // nothing to send: no connection needed, so no failure
  });

  it('rejects within the deadline when the broker port is dead, logging through the sink, then recovers once it is reachable', async () => {
    const port = await freePort();
    const logs: KafkaLogRecord[] = [];
    const publisher = newPublisher({
      brokers: [`127.0.0.1:${port}`],
      publishTimeoutMs: 3_000,
      connectionTimeoutMs: 500,
      retries: 2,
      log: (record) => logs.push(record),
    });
    const topic = uniqueTopic('outage');
    const startedAt = Date.now();
    await assert.rejects(publisher.publish([voucherEvent(topic, 'TB7', 0)]), (error: unknown) => {
      assert.ok(error instanceof EventPublishError, `not an EventPublishError: ${String(error)}`);
      assert.equal(error.retriable, true);
      return true;
    });
    const elapsed = Date.now() - startedAt;
    assert.ok(elapsed < 3_500, `took ${elapsed} ms`);
    assert.ok(logs.some((record) => record.level === 'error' && record.namespace.length > 0), 'kafkajs errors reach the log sink');

    // The broker comes back on that address: the same publisher reconnects by itself.
    const forwarder = await startForwarder(port, brokers[0]!);
    try {
      await publisher.publish([voucherEvent(topic, 'TB7', 1)]);
      const received = await consumeAll(brokers, topic, { count: 1, timeoutMs: 30_000, settleMs: 300 });
      assert.deepEqual(
        received.map((m) => (JSON.parse(m.value!.toString('utf8')) as { seq: number }).seq),
        [1],
        'the failed event was not written, the later one was',
      );
    } finally {
      await publisher.close();
      await forwarder.close();
    }
  });

  it('gives up on a broker that accepts connections but never answers, instead of hanging', async () => {
    const silent = await startSilentServer();
    try {
      const publisher = newPublisher({ brokers: [`127.0.0.1:${silent.port}`], publishTimeoutMs: 1_500, requestTimeoutMs: 1_000, retries: 5 });
      const startedAt = Date.now();
      await assert.rejects(publisher.publish([voucherEvent(uniqueTopic('silent'), 'TB8', 0)]), EventPublishError);
      const elapsed = Date.now() - startedAt;
      assert.ok(elapsed >= 900 && elapsed < 2_000, `took ${elapsed} ms`);
      const closeStarted = Date.now();
      await publisher.close();
      assert.ok(Date.now() - closeStarted < 2_000, 'close() is bounded too');
    } finally {
      await silent.close();
    }
  });

  it('times out as EventPublishTimeoutError when the deadline is shorter than kafkajs retries', async () => {
    const silent = await startSilentServer();
    try {
      const publisher = newPublisher({ brokers: [`127.0.0.1:${silent.port}`], publishTimeoutMs: 700, requestTimeoutMs: 5_000 });
      const startedAt = Date.now();
      await assert.rejects(publisher.publish([voucherEvent(uniqueTopic('deadline'), 'TB9', 0)]), EventPublishTimeoutError);
      const elapsed = Date.now() - startedAt;
      assert.ok(elapsed >= 650 && elapsed < 1_200, `took ${elapsed} ms`);
      await publisher.close();
    } finally {
      await silent.close();
    }
  });
});
