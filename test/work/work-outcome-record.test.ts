/**
 * A `done` outcome's `record` is written in the transaction that marks the item done, and only while the lease
 * is ours. Found by `npm run chaos`: code.sent appended in its own transaction was appended twice when the
 * gateway was killed between that transaction and the item's completion (the re-run got "already sent").
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { appendEvent, listOrderEvents } from '../../src/outbox/outbox';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { enqueueWork } from '../../src/work/work-queue';
import { WorkRunner, type WorkContext } from '../../src/work/work-runner';
import { openTestDatabase, type TestDatabase } from '../support/database';

const dbs: TestDatabase[] = [];
after(async () => {
  for (const d of dbs) await d.drop();
});

async function setUp(orderId: string): Promise<TestDatabase> {
  const tdb = await openTestDatabase('sqlite');
  dbs.push(tdb);
  await tdb.db.transaction((em) => enqueueWork(em, { idempotencyKey: `send:${orderId}`, orderId, kind: 'test.send', upstream: 'taobao', payload: { orderId } }));
  return tdb;
}

it('records the result with the completion, once', async () => {
  const { db } = await setUp('o_rec_1');
  const runner = new WorkRunner({ db, pollIntervalMs: 10 });
  runner.register('test.send', async (ctx: WorkContext<{ orderId: string }>) => ({
    outcome: 'done',
    record: async (em) => void (await appendEvent(em, { orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } })),
  }));
  assert.equal(await runner.runOnce(), 1);
  assert.equal(await runner.runOnce(), 0, 'nothing left to run');
  const item = await db.read((em) => em.findOneByOrFail(WorkItemEntity, { orderId: 'o_rec_1' }));
  assert.equal(item.status, 'done');
  assert.deepEqual((await db.read((em) => listOrderEvents(em, 'o_rec_1'))).map((e) => e.type), ['code.sent']);
});

it('writes nothing when the lease was lost meanwhile (the new owner records it)', async () => {
  const { db } = await setUp('o_rec_2');
  const runner = new WorkRunner({ db, pollIntervalMs: 10 });
  runner.register('test.send', async (ctx: WorkContext<{ orderId: string }>) => {
    // Another replica took the item over while the call was out.
    await db.transaction((em) => em.update(WorkItemEntity, { id: ctx.item.id }, { leaseOwner: 'another-replica' }));
    return {
      outcome: 'done',
      record: async (em) => void (await appendEvent(em, { orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } })),
    };
  });
  await runner.runOnce();
  const item = await db.read((em) => em.findOneByOrFail(WorkItemEntity, { orderId: 'o_rec_2' }));
  assert.equal(item.status, 'in_flight');
  assert.equal(item.leaseOwner, 'another-replica');
  assert.deepEqual(await db.read((em) => listOrderEvents(em, 'o_rec_2')), []);
});
