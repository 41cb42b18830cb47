/**
 * A `done` outcome's `record` is written in the transaction that marks the item done, and only while the lease
 * is ours. Found by `npm run chaos`: code.sent appended in its own transaction was appended twice when the
 * gateway was killed between that transaction and the item's completion (the re-run got "already sent").
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import type { EntityManager } from 'typeorm';
import { appendEvent, appendEventStatements, listOrderEvents } from '../../src/outbox/outbox';
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
    record: { statements: (em) => appendEventStatements(em, [{ orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } }]) },
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
      record: { statements: (em) => appendEventStatements(em, [{ orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } }]) },
    };
  });
  await runner.runOnce();
  const item = await db.read((em) => em.findOneByOrFail(WorkItemEntity, { orderId: 'o_rec_2' }));
  assert.equal(item.status, 'in_flight');
  assert.equal(item.leaseOwner, 'another-replica');
  assert.deepEqual(await db.read((em) => listOrderEvents(em, 'o_rec_2')), []);
});

for (const kind of ['sqlite', 'mysql'] as const) {
  it(`a guard that did not hold undoes the record, and 'otherwise' is written instead (${kind})`, async () => {
    const tdb = await openTestDatabase(kind);
    dbs.push(tdb);
    const { db } = tdb;
    await db.transaction((em) => enqueueWork(em, { idempotencyKey: 'send:o_g1', orderId: 'o_g1', kind: 'test.send', upstream: 'taobao', payload: { orderId: 'o_g1', otherwise: true } }));
    await db.transaction((em) => enqueueWork(em, { idempotencyKey: 'send:o_g2', orderId: 'o_g2', kind: 'test.send', upstream: 'taobao', payload: { orderId: 'o_g2', otherwise: false } }));
    const runner = new WorkRunner({ db });
    runner.register('test.send', async (ctx: WorkContext<{ orderId: string; otherwise: boolean }>) => ({
      outcome: 'done',
      record: {
        statements: (em) => [
          // The state this record assumed is gone (no such row): the guard does not hold.
          { sql: `UPDATE work_items SET last_error = 'guarded' WHERE id = ? AND status = 'parked'`, params: [ctx.item.id] },
          ...appendEventStatements(em, [{ orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } }]),
        ],
        held: ([guard]) => guard?.affected === 1,
        ...(ctx.payload.otherwise
          ? { otherwise: async (em: EntityManager) => void (await appendEvent(em, { orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: true, codeCount: 1 } })) }
          : {}),
      },
    }));
    assert.equal(await runner.runOnce(), 2);
    const rows = await db.read((em) => em.find(WorkItemEntity, { order: { id: 'ASC' } }));
    assert.deepEqual(rows.map((w) => [w.status, w.lastError]), [['done', null], ['done', null]], 'done either way, the guarded write undone');
    const sent = async (orderId: string) => (await db.read((em) => listOrderEvents(em, orderId))).map((e) => e.event.codeSent?.resend);
    assert.deepEqual(await sent('o_g1'), [true], 'only what otherwise wrote');
    assert.deepEqual(await sent('o_g2'), [], 'nothing recorded');
  });

  it(`a record that cannot be written puts the item back to be tried again (${kind})`, async () => {
    const tdb = await openTestDatabase(kind);
    dbs.push(tdb);
    const { db } = tdb;
    await db.transaction((em) => enqueueWork(em, { idempotencyKey: 'send:o_f', orderId: 'o_f', kind: 'test.send', upstream: 'taobao', payload: { orderId: 'o_f' } }));
    const runner = new WorkRunner({ db });
    runner.register('test.send', async (ctx: WorkContext<{ orderId: string }>) => ({
      outcome: 'done',
      record: {
        statements: (em) => [
          ...appendEventStatements(em, [{ orderId: ctx.payload.orderId, type: 'code.sent', payload: { resend: false, codeCount: 1 } }]),
          { sql: 'UPDATE no_such_table SET x = 1', params: [] },
        ],
      },
    }));
    assert.equal(await runner.runOnce(), 1);
    const item = await db.read((em) => em.findOneByOrFail(WorkItemEntity, { orderId: 'o_f' }));
    assert.equal(item.status, 'pending');
    assert.equal(item.leaseOwner, null);
    assert.equal(item.attempts, 1);
    assert.match(item.lastError ?? '', /^\[ambiguous\] recording the result failed/);
    assert.deepEqual(await db.read((em) => listOrderEvents(em, 'o_f')), [], 'none of the record was kept');
  });
}
