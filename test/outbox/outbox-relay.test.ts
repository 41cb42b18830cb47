import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { In } from 'typeorm';
import { EVENT_HEADERS, EventPublishError, type EventPublisher, type OutgoingEvent } from '../../src/outbox/event-publisher';
import { KafkaEventPublisher } from '../../src/outbox/kafka-event-publisher';
import { appendEvent, decodeOrderEvent, listOrderEvents, ORDER_EVENT_CONTENT_TYPE } from '../../src/outbox/outbox';
import { OutboxRelay, outboxBacklog, startOutboxRelay } from '../../src/outbox/outbox-relay';
import { EventType } from '../../src/gen/ticketgateway/events/v1/events';
import type { Database } from '../../src/persistence/database';
import { OutboxEventEntity, OutboxPendingEntity, OutboxRelayLeaseEntity } from '../../src/persistence/entities/outbox-event.entity';
import { fileScope } from '../support/database';
import { consumeAll, testKafkaBrokers, type ConsumedMessage } from '../support/kafka';
import { freePort } from '../support/services';
import { startForwarder } from './tcp-forwarder';

const brokers = testKafkaBrokers();
const { cleanups, database } = fileScope();

function publisher(list = brokers) {
  const p = new KafkaEventPublisher({ clientId: `outbox-test-${randomUUID().slice(0, 6)}`, brokers: list, connectionTimeoutMs: 500, retries: 1, publishTimeoutMs: 4_000, requestTimeoutMs: 3_000 });
  cleanups.push(() => p.close());
  return p;
}

function prefix(): string {
  return `test.${randomUUID().slice(0, 8)}.`;
}

/** One transaction per event, like the business code does; the payload carries the sequence number. */
async function appendFlow(db: Database, orderId: string, count: number, from = 1): Promise<string[]> {
  const ids: string[] = [];
  for (let seq = from; seq < from + count; seq++) {
    const e = await db.transaction((em) =>
      appendEvent(em, { orderId, type: 'write-off.recorded', payload: { writeOffId: `${orderId}-wo-${seq}`, quantity: seq, gateDevice: 'gate-1', admittedTime: new Date(1_767_225_600_000 + seq) } }),
    );
    ids.push(e.eventId);
  }
  return ids;
}

function seqOf(m: ConsumedMessage): number {
  const event = decodeOrderEvent(m.value!);
  return event.writeOffRecorded!.quantity;
}

/** Per key, the sequence numbers as they arrived. */
function sequencesByKey(messages: ConsumedMessage[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const m of messages) {
    const list = out.get(m.key!) ?? [];
    list.push(seqOf(m));
    out.set(m.key!, list);
  }
  return out;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function pendingCount(db: Database): Promise<number> {
  return db.read((em) => em.count(OutboxPendingEntity));
}

/** Ids of the events still queued for the relay. */
async function pendingIds(db: Database): Promise<Set<number>> {
  return new Set((await db.read((em) => em.find(OutboxPendingEntity))).map((p) => Number(p.id)));
}

describe('appendEvent', () => {
  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`writes in the caller's transaction and stays queryable without a broker (${kind})`, async () => {
      const { db } = await database(kind);
      await assert.rejects(
        db.transaction(async (em) => {
          await appendEvent(em, { orderId: 'o_rolled_back', type: 'order.expired', payload: { expiredQuantity: 2 } });
          throw new Error('business change failed');
        }),
        /business change failed/,
      );
      assert.deepEqual(await db.read((em) => listOrderEvents(em, 'o_rolled_back')), []);

      const appended = await db.transaction((em) =>
        appendEvent(em, { orderId: 'o_1', type: 'refund.approved', payload: { refundId: 'rf_1', quantity: 1, amountFen: '12800' }, occurredAt: 1_767_225_600_000 }),
      );
      assert.equal(appended.topic, 'order-events');
      // No broker configured: nothing is started, the event waits in the table.
      assert.equal(startOutboxRelay({ db, publisher: undefined }), undefined);
      const stored = await db.read((em) => listOrderEvents(em, 'o_1'));
      assert.equal(stored.length, 1);
      const [row] = stored;
      assert.equal(row!.status, 'pending');
      assert.equal(row!.type, 'refund.approved');
      assert.equal(row!.eventId, appended.eventId);
      assert.equal(row!.event.eventId, appended.eventId);
      assert.equal(row!.event.type, EventType.EVENT_TYPE_REFUND_APPROVED);
      assert.equal(row!.event.orderId, 'o_1');
      assert.equal(row!.event.occurredAt?.getTime(), 1_767_225_600_000);
      assert.deepEqual(row!.event.refundApproved, { refundId: 'rf_1', quantity: 1, amountFen: '12800' });
      const backlog = await outboxBacklog(db, { now: () => row!.createdAt + 5_000 });
      assert.deepEqual(backlog, { pending: 1, oldestPendingAgeMs: 5_000 });
    });
  }
});

describe('OutboxRelay', () => {
  for (const kind of ['mysql', 'sqlite'] as const) {
    it(`publishes a flow's events to Kafka in order per order, with ids and headers (${kind})`, async () => {
      const { db } = await database(kind);
      const orders = ['o_a', 'o_b', 'o_c'];
      const eventIds = new Map<string, string[]>();
      // Interleave orders so ids of different orders alternate in the table.
      await Promise.all(orders.map(async (o) => eventIds.set(o, await appendFlow(db, o, 6))));
      const topicPrefix = prefix();
      const relay = new OutboxRelay({ db, publisher: publisher(), topicPrefix, batchSize: 4, pollIntervalMs: 20 });
      relay.start();
      cleanups.push(() => relay.stop());
      const messages = await consumeAll(brokers, `${topicPrefix}order-events`, { count: 18, settleMs: 300 });
      await relay.stop();

      assert.equal(messages.length, 18);
      const byKey = sequencesByKey(messages);
      for (const o of orders) assert.deepEqual(byKey.get(o), range(6), `order ${o} in order`);
      for (const m of messages) {
        const event = decodeOrderEvent(m.value!);
        assert.equal(m.headers[EVENT_HEADERS.eventId], event.eventId);
        assert.equal(m.headers[EVENT_HEADERS.eventType], 'write-off.recorded');
        assert.equal(m.headers[EVENT_HEADERS.schemaVersion], '1');
        assert.equal(m.headers[EVENT_HEADERS.contentType], ORDER_EVENT_CONTENT_TYPE);
        assert.equal(event.orderId, m.key);
        assert.equal(eventIds.get(m.key!)![seqOf(m) - 1], event.eventId);
      }
      assert.equal(await pendingCount(db), 0);
      const stored = await db.read(async (em) => (await Promise.all(orders.map((o) => listOrderEvents(em, o)))).flat());
      assert.equal(stored.length, 18);
      assert.ok(stored.every((e) => e.status === 'published' && e.attempts === 0));
    });
  }

  it('keeps events pending while the broker is unreachable and delivers all once it is back (mysql)', async () => {
    const { db } = await database('mysql');
    const port = await freePort(); // nothing listens here yet: the broker is "down"
    const topicPrefix = prefix();
    await appendFlow(db, 'o_down_1', 4);
    await appendFlow(db, 'o_down_2', 3);
    const failures: number[] = [];
    const relay = new OutboxRelay({
      db,
      publisher: publisher([`127.0.0.1:${port}`]),
      topicPrefix,
      pollIntervalMs: 20,
      backoffInitialMs: 50,
      backoffMaxMs: 300,
      onPublishFailed: (n) => failures.push(n),
    });
    relay.start();
    cleanups.push(() => relay.stop());
    await waitFor('two failed publishes', async () => failures.length >= 2);
    assert.equal(await pendingCount(db), 7, 'nothing marked published while the broker is down');
    const queued = await db.read((em) => em.find(OutboxPendingEntity));
    assert.equal(queued.length, 7);
    assert.ok(queued.every((r) => r.attempts >= 1 && r.retryAt !== null), 'each failure was counted on the queued events');

    // More business happens during the outage.
    await appendFlow(db, 'o_down_3', 2);
    const forwarder = await startForwarder(port, brokers[0]!); // the broker comes back at the same address
    cleanups.push(() => forwarder.close());
    await waitFor('all published', async () => (await pendingCount(db)) === 0, 30_000);
    await relay.stop();

    const messages = await consumeAll(brokers, `${topicPrefix}order-events`, { count: 9, settleMs: 300 });
    const byKey = sequencesByKey(messages);
    assert.deepEqual(byKey.get('o_down_1'), range(4));
    assert.deepEqual(byKey.get('o_down_2'), range(3));
    assert.deepEqual(byKey.get('o_down_3'), range(2));
  });

  it('runs as two relays on one MariaDB: one publishes, the other takes over when it stops, without duplicates (mysql)', async () => {
    const { db, reopen } = await database('mysql');
    const other = await reopen({ runMigrations: false }); // the second replica has its own pool
    cleanups.push(() => other.close());
    const topicPrefix = prefix();
    const published = [0, 0];
    const relays = [db, other].map(
      (d, i) => new OutboxRelay({ db: d, publisher: publisher(), topicPrefix, batchSize: 3, pollIntervalMs: 5, leaseMs: 600, onPublished: (n) => (published[i]! += n) }),
    );
    for (const r of relays) {
      r.start();
      cleanups.push(() => r.stop());
    }
    const orders = ['o_r1', 'o_r2', 'o_r3', 'o_r4'];
    // Half of each order's events are appended while both relays run; then the one publishing stops, the rest follow.
    const appendHalf = (from: number) => Promise.all(orders.map((o, i) => appendFlow(i % 2 === 0 ? db : other, o, 6, from)));
    await appendHalf(1);
    await waitFor('the first half published', async () => (await pendingCount(db)) === 0, 30_000);
    assert.ok(published[0] === 0 || published[1] === 0, `one relay at a time (${published.join('/')})`);
    const first = published[0]! > 0 ? 0 : 1;
    assert.ok(relays[first]!.leading && !relays[1 - first]!.leading);
    await relays[first]!.stop();
    await appendHalf(7);
    await waitFor('all published', async () => (await pendingCount(db)) === 0, 30_000);
    assert.ok(relays[1 - first]!.leading, 'the standby took the lease');
    await Promise.all(relays.map((r) => r.stop()));

    const messages = await consumeAll(brokers, `${topicPrefix}order-events`, { count: 48, settleMs: 1_000 });
    assert.equal(messages.length, 48, 'no duplicates');
    assert.equal(new Set(messages.map((m) => m.headers[EVENT_HEADERS.eventId])).size, 48);
    const byKey = sequencesByKey(messages);
    for (const o of orders) assert.deepEqual(byKey.get(o), range(12), `order ${o} in order`);
    assert.equal(published[0]! + published[1]!, 48);
    assert.ok(published[1 - first]! > 0, `the standby published the rest (${published.join('/')})`);
  });

  it('waits for the lease of a relay that died, then takes over (sqlite)', async () => {
    const { db } = await database('sqlite');
    const dead = new OutboxRelay({ db, publisher: new ScriptedPublisher(), owner: 'relay:crashed', leaseMs: 800 });
    await appendFlow(db, 'o_dead', 1);
    assert.equal((await dead.relayOnce()).published, 1); // holds the lease now, and never runs again
    await appendFlow(db, 'o_dead', 2);
    const publisher = new ScriptedPublisher();
    const relay = new OutboxRelay({ db, publisher, pollIntervalMs: 5, leaseMs: 800 });
    const startedAt = Date.now();
    relay.start();
    cleanups.push(() => relay.stop());
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(publisher.acknowledged.length, 0, 'nothing published while the lease is held');
    await waitFor('the rest published', async () => publisher.acknowledged.length === 2, 5_000);
    assert.ok(Date.now() - startedAt >= 500, 'only after the lease ran out');
    await relay.stop();
    const lease = await db.read((em) => em.findOneByOrFail(OutboxRelayLeaseEntity, { name: 'outbox_events' }));
    assert.equal(lease.owner, relay.owner);
    assert.equal(lease.leaseUntil, 0, 'given back on stop');
  });

  it("does not publish past an order's earlier event that waits for its retry (mysql)", async () => {
    const { db } = await database('mysql');
    await appendFlow(db, 'o_held', 3);
    await appendFlow(db, 'o_free', 2);
    const first = await db.read((em) => em.findOneOrFail(OutboxEventEntity, { where: { orderId: 'o_held' }, order: { id: 'ASC' } }));
    // An earlier relay failed to publish the first event of o_held; its retry is a minute away.
    await db.transaction((em) => em.update(OutboxPendingEntity, { id: first.id }, { attempts: 1, retryAt: Date.now() + 60_000 }));
    const topicPrefix = prefix();
    const relay = new OutboxRelay({ db, publisher: publisher(), topicPrefix });
    const round = await relay.relayOnce();
    assert.deepEqual(round, { claimed: 2, published: 2, failed: 0 });
    const held = await db.read((em) => listOrderEvents(em, 'o_held'));
    assert.deepEqual(held.map((e) => e.status), ['pending', 'pending', 'pending']);

    // The retry instant comes (here: moved to the past; a relay that takes the lease reads it): the whole order goes out, in order.
    await db.transaction((em) => em.update(OutboxPendingEntity, { id: first.id }, { retryAt: Date.now() - 1 }));
    assert.deepEqual(await relay.relayOnce(), { claimed: 3, published: 3, failed: 0 });
    const messages = await consumeAll(brokers, `${topicPrefix}order-events`, { count: 5, settleMs: 300 });
    const byKey = sequencesByKey(messages);
    assert.deepEqual(byKey.get('o_held'), [1, 2, 3]);
    assert.deepEqual(byKey.get('o_free'), [1, 2]);
  });

  it('purges published events older than the retention, in batches, and never pending ones (sqlite)', async () => {
    const { db } = await database('sqlite');
    let now = 1_767_225_600_000;
    const clock = { now: () => now };
    const append = (i: number) => db.transaction((em) => appendEvent(em, { orderId: `o_p${i}`, type: 'order.expired', payload: { expiredQuantity: 1 } }, clock));
    // Six created ten days ago, five of them published; one created a second ago and published.
    now -= 10 * 86_400_000;
    const old: Array<Awaited<ReturnType<typeof append>>> = [];
    for (let i = 0; i < 6; i++) old.push(await append(i));
    now += 10 * 86_400_000 - 1_000;
    const recent = await append(6);
    now += 1_000;
    await db.transaction((em) => em.delete(OutboxPendingEntity, { id: In([...old.slice(0, 5), recent].map((e) => e.id)) }));
    const relay = new OutboxRelay({ db, publisher: publisher(), clock, retentionMs: 7 * 86_400_000, purgeBatchSize: 2 });
    assert.equal(await relay.purgeOnce(), 5);
    const left = await db.read((em) => em.find(OutboxEventEntity, { order: { id: 'ASC' } }));
    assert.deepEqual(left.map((r) => r.id), [old[5]!.id, recent.id]);
    now += 8 * 86_400_000;
    assert.equal(await relay.purgeOnce(), 1);
    assert.deepEqual((await db.read((em) => em.find(OutboxEventEntity))).map((r) => r.id), [old[5]!.id], 'the pending one stays');
  });
});

/** An in-memory broker: records what it acknowledged, fails when told to, takes a little time like a real one. */
class ScriptedPublisher implements EventPublisher {
  failures = 0;
  /** Publishes begun. */
  calls = 0;
  constructor(
    private readonly script: { fails?: (call: number) => boolean; delayMs?: (call: number) => number } = {},
    /** Shared by several relays' publishers: one broker's log. */
    readonly acknowledged: OutgoingEvent[] = [],
  ) {}
  async publish(events: readonly OutgoingEvent[]): Promise<void> {
    const call = this.calls++;
    await new Promise((r) => setTimeout(r, this.script.delayMs?.(call) ?? 1));
    if (this.script.fails?.(call)) {
      this.failures++;
      throw new EventPublishError('broker refused the batch', true);
    }
    this.acknowledged.push(...events);
  }
  async close(): Promise<void> {}
}

describe('OutboxRelay loop', () => {
  for (const kind of ['mysql', 'sqlite'] as const) {
    it(`keeps each order in sequence while batches fail and events keep coming, two relays (${kind})`, async () => {
      const { db } = await database(kind);
      const broker: OutgoingEvent[] = [];
      // Every third publish fails; delays vary so batches finish out of order across the relays.
      const publishers = [0, 1].map((r) => new ScriptedPublisher({ fails: (call) => call % 3 === 1, delayMs: (call) => (call * 7 + r) % 5 }, broker));
      const relays = publishers.map((publisher) => new OutboxRelay({ db, publisher, batchSize: 3, pollIntervalMs: 5, backoffInitialMs: 2, backoffMaxMs: 10, leaseMs: 600 }));
      for (const relay of relays) {
        relay.start();
        cleanups.push(() => relay.stop());
      }
      const orders = ['o_p1', 'o_p2', 'o_p3', 'o_p4', 'o_p5'];
      const eventIds = new Map<string, string[]>();
      // Half of the events; then the publishing relay stops and the other takes over for the rest, failures and all.
      await Promise.all(orders.map(async (o) => eventIds.set(o, await appendFlow(db, o, 5))));
      await waitFor('half published', async () => (await pendingCount(db)) === 0, 30_000);
      await relays.find((r) => r.leading)!.stop();
      await Promise.all(orders.map(async (o) => eventIds.get(o)!.push(...(await appendFlow(db, o, 5, 6)))));
      await waitFor('all published', async () => (await pendingCount(db)) === 0, 30_000);

      assert.ok(publishers.every((p) => p.failures > 0), 'publishes failed on both relays');
      for (const o of orders) {
        const sent = broker.filter((e) => e.key === o).map((e) => e.eventId);
        assert.deepEqual(sent, eventIds.get(o), `order ${o}: each event once, in order`);
      }
      assert.equal(broker.length, 50);
    });
  }

  it('records the batches the broker acknowledged before stop() resolves, and leaves nothing leased (mysql)', async () => {
    const { db } = await database('mysql');
    await appendFlow(db, 'o_stop_1', 3);
    await appendFlow(db, 'o_stop_2', 3);
    const publisher = new ScriptedPublisher({ delayMs: () => 300 });
    const relay = new OutboxRelay({ db, publisher, batchSize: 2 });
    relay.start();
    await waitFor('a batch at the broker', async () => publisher.calls > 0);
    await relay.stop();

    const rows = await db.read((em) => em.find(OutboxEventEntity, { order: { id: 'ASC' } }));
    const queued = await pendingIds(db);
    const acknowledged = new Set(publisher.acknowledged.map((e) => e.eventId));
    assert.ok(acknowledged.size > 0);
    for (const r of rows) assert.equal(queued.has(r.id), !acknowledged.has(r.eventId), `row ${r.id}: queued exactly when not acknowledged`);
    // The lease is given back: another relay publishes the rest at once.
    const next = new OutboxRelay({ db, publisher: new ScriptedPublisher(), batchSize: 10 });
    assert.equal((await next.relayOnce()).published, rows.length - acknowledged.size);
  });

  it('looks again within milliseconds after publishing, not after the idle poll interval (sqlite)', async () => {
    const { db } = await database('sqlite');
    const publisher = new ScriptedPublisher();
    const relay = new OutboxRelay({ db, publisher, pollIntervalMs: 60_000 });
    await appendFlow(db, 'o_soon', 1);
    relay.start();
    cleanups.push(() => relay.stop());
    await waitFor('the first event', async () => publisher.acknowledged.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    const appendedAt = Date.now();
    await appendFlow(db, 'o_soon', 1);
    await waitFor('the second event', async () => publisher.acknowledged.length === 2, 5_000);
    assert.ok(Date.now() - appendedAt < 1_000, `published ${Date.now() - appendedAt} ms after it was appended`);
    await relay.stop();
  });

  it('gathers events coming in a trickle into few batches while it lingers, publishing each batch at once (sqlite)', async () => {
    const { db } = await database('sqlite');
    const publisher = new ScriptedPublisher();
    const batches: number[] = [];
    const publish = publisher.publish.bind(publisher);
    publisher.publish = (events) => {
      batches.push(events.length);
      return publish(events);
    };
    const relay = new OutboxRelay({ db, publisher, batchSize: 100, pollIntervalMs: 5, lingerMs: 1_000 });
    relay.start();
    cleanups.push(() => relay.stop());
    // Ten events, 20 ms apart: without the linger the relay, looking again within milliseconds, sends about one per batch.
    for (let i = 1; i <= 10; i++) {
      await appendFlow(db, 'o_trickle', 1, i);
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor('all ten published', async () => publisher.acknowledged.length === 10, 10_000);
    assert.ok(batches.length <= 3, `batches of ${batches.join(', ')}`);
    assert.deepEqual(publisher.acknowledged.map((e) => e.eventId), (await db.read((em) => em.find(OutboxEventEntity, { order: { id: 'ASC' } }))).map((r) => r.eventId));
    await relay.stop();
  });

  it('keeps purging at the next turn while due rows exceed one run\'s budget (sqlite)', async () => {
    const { db } = await database('sqlite');
    let now = 1_767_225_600_000;
    const clock = { now: () => now };
    for (let i = 0; i < 7; i++) {
      await db.transaction((em) => appendEvent(em, { orderId: `o_q${i}`, type: 'order.expired', payload: { expiredQuantity: 1 } }, clock));
    }
    await db.transaction((em) => em.query('DELETE FROM outbox_pending'));
    now += 8 * 86_400_000;
    // One run deletes at most 2 rows; the interval alone would take minutes to get through 7.
    const relay = new OutboxRelay({ db, publisher: new ScriptedPublisher(), clock, purgeBatchSize: 2, purgeMaxBatches: 1, purgeIntervalMs: 60_000, pollIntervalMs: 5 });
    relay.start();
    cleanups.push(() => relay.stop());
    await waitFor('all purged', async () => (await db.read((em) => em.count(OutboxEventEntity))) === 0, 5_000);
    await relay.stop();
  });
});
