/**
 * The spine as the composition root wires it: events written in a transaction reach Kafka through the relay under
 * the configured topic prefix; durable work runs; parked work is visible through the admin RPC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { loadConfig } from '../../src/config';
import { Gateway } from '../../src/app';
import { createLogger } from '../../src/observability/logger';
import { appendEvent, decodeOrderEvent } from '../../src/outbox/outbox';
import { enqueueWork } from '../../src/work/work-queue';
import { WorkAdminServiceClient, ListParkedWorkRequest, type ListParkedWorkResponse } from '../../src/gen/ticketgateway/admin/v1/work_admin';
import { consumeAll, testKafkaBrokers } from '../support/kafka';
import { unary } from '../support/grpc-clients';

test('gateway with KAFKA_BROKERS: outbox events reach Kafka in order, work runs, parked work is listed', { timeout: 90_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-spine-'));
  const prefix = `spine-${randomUUID().slice(0, 8)}.`;
  const gateway = await Gateway.start({
    config: loadConfig({
      DATA_DIR: dataDir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0',
      KAFKA_BROKERS: testKafkaBrokers().join(','), KAFKA_TOPIC_PREFIX: prefix, WORK_MAX_ATTEMPTS: '2',
    }),
    logger: createLogger('silent'),
    defaultMetrics: false,
  });
  const admin = new WorkAdminServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  try {
    assert.ok(gateway.spine.relay, 'a relay runs when a broker is configured');
    for (let i = 1; i <= 3; i++) {
      await gateway.db.transaction((em) => appendEvent(em, { orderId: 'o_spine_1', type: 'order.expired', payload: { expiredQuantity: i } }));
    }
    const messages = await consumeAll(testKafkaBrokers(), `${prefix}order-events`, { count: 3, timeoutMs: 30_000 });
    assert.deepEqual(messages.map((m) => m.key), ['o_spine_1', 'o_spine_1', 'o_spine_1']);
    assert.deepEqual(messages.map((m) => decodeOrderEvent(m.value!).orderExpired?.expiredQuantity), [1, 2, 3], 'in order');
    assert.equal(new Set(messages.map((m) => m.headers['event-id'])).size, 3);

    // work: one handler that succeeds, one that fails for good and parks
    const done: string[] = [];
    gateway.spine.workRunner.register('test.ok', async (ctx) => {
      done.push((ctx.payload as { n: string }).n);
      return { outcome: 'done' };
    });
    gateway.spine.workRunner.register('test.poison', async () => ({ outcome: 'park', error: 'upstream says no for good' }));
    await gateway.db.transaction(async (em) => {
      await enqueueWork(em, { idempotencyKey: 'ok-1', orderId: 'o_spine_2', kind: 'test.ok', upstream: 'test', payload: { n: 'first' } });
      await enqueueWork(em, { idempotencyKey: 'poison-1', orderId: 'o_spine_3', kind: 'test.poison', upstream: 'test', payload: {} });
    });
    const deadline = Date.now() + 20_000;
    let parked: ListParkedWorkResponse = { items: [], nextPageToken: '' };
    while (Date.now() < deadline) {
      parked = await unary(admin, 'listParkedWork', ListParkedWorkRequest.fromPartial({}));
      if (done.length === 1 && parked.items.length === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(done, ['first']);
    assert.equal(parked.items.length, 1);
    assert.equal(parked.items[0]!.kind, 'test.poison');
  } finally {
    admin.close();
    await gateway.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
