import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lastSentCodes } from '../../src/orders/order-codes';
import { TAOBAO_FLOW_WORK } from '../../src/orders/order-ports';
import type { Database } from '../../src/persistence/database';
import { WorkItemEntity, type WorkItemStatus } from '../../src/persistence/entities/work-item.entity';
import { enqueueWork } from '../../src/work/work-queue';
import { WorkPurge } from '../../src/work/work-purge';
import { fileScope } from '../support/database';
import { waitFor } from '../support/wait';

const { cleanups, database } = fileScope();

const DAY = 24 * 3_600_000;
const START = Date.UTC(2026, 0, 1);
const RETENTION = 30 * DAY;
const KEEP = [TAOBAO_FLOW_WORK.taobaoSend, TAOBAO_FLOW_WORK.taobaoResend];

/** A clock the test moves by hand. */
function handClock(at = START) {
  const clock = { t: at, now: () => clock.t };
  return clock;
}

/** Enqueues an item on `day`, then gives it `status`, last updated on `finishedDay`. */
async function item(
  db: Database,
  key: string,
  o: { day: number; status: WorkItemStatus; finishedDay?: number; kind?: string; orderId?: string; payload?: unknown },
): Promise<number> {
  const { id } = await db.transaction((em) =>
    enqueueWork(
      em,
      { idempotencyKey: key, orderId: o.orderId ?? null, kind: o.kind ?? 'taobao.consume', upstream: 'taobao', payload: o.payload ?? { key } },
      { now: () => START + o.day * DAY },
    ),
  );
  await db.transaction((em) => em.update(WorkItemEntity, { id }, { status: o.status, updatedAt: START + (o.finishedDay ?? o.day) * DAY }));
  return id;
}

async function remainingKeys(db: Database): Promise<string[]> {
  const rows = await db.read((em) => em.find(WorkItemEntity, { select: { idempotencyKey: true }, order: { id: 'ASC' } }));
  return rows.map((r) => r.idempotencyKey);
}

describe('WorkPurge', () => {
  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`deletes finished items past the retention; open items, kept kinds and recent ones stay (${kind})`, async () => {
      const { db } = await database(kind);
      await item(db, 'done-old', { day: 0, status: 'done' });
      await item(db, 'abandoned-old', { day: 0, status: 'abandoned' });
      await item(db, 'send-old', { day: 0, status: 'done', kind: TAOBAO_FLOW_WORK.taobaoSend, orderId: 'o_1', payload: { orderId: 'o_1', codes: [{ code: 'C1', num: 2 }] } });
      await item(db, 'parked-old', { day: 0, status: 'parked' });
      await item(db, 'pending-old', { day: 1, status: 'pending' });
      await item(db, 'in-flight-old', { day: 1, status: 'in_flight' });
      await item(db, 'finished-lately', { day: 2, status: 'done', finishedDay: 20 });
      await item(db, 'done-recent', { day: 35, status: 'done' });

      const clock = handClock(START + 40 * DAY);
      const purge = new WorkPurge({ db, clock, retentionMs: RETENTION, keepKinds: KEEP });
      const run = await purge.runOnce();
      assert.deepEqual(run, { deleted: 2, passEnded: true });
      assert.deepEqual(await remainingKeys(db), ['send-old', 'parked-old', 'pending-old', 'in-flight-old', 'finished-lately', 'done-recent']);
      // Why send items are kept: the codes last sent to Taobao are read from them.
      assert.deepEqual(await db.read((em) => lastSentCodes(em, 'o_1')), ['C1']);

      // Later, the item finished on day 20 is past the retention too; nothing else changed.
      clock.t = START + 51 * DAY;
      assert.deepEqual(await purge.runOnce(), { deleted: 1, passEnded: true });
      assert.deepEqual(await remainingKeys(db), ['send-old', 'parked-old', 'pending-old', 'in-flight-old', 'done-recent']);
    });
  }

  it('walks the table in bounded steps, ends a pass at the first recent item, and finds items finished behind its cursor on the next pass (sqlite)', async () => {
    const { db } = await database('sqlite');
    for (let i = 0; i < 5; i++) await item(db, `old-${i}`, { day: 0, status: i === 1 ? 'parked' : 'done' });
    await item(db, 'recent-done', { day: 39, status: 'done' });
    await item(db, 'older-after-recent', { day: 0, status: 'done' }); // a clock behind on another replica: left for later

    const clock = handClock(START + 40 * DAY);
    const purge = new WorkPurge({ db, clock, retentionMs: RETENTION, batchSize: 2, maxBatches: 1 });
    assert.deepEqual(await purge.runOnce(), { deleted: 1, passEnded: false }); // old-0 (old-1 is parked); cursor after old-1
    assert.deepEqual(await purge.runOnce(), { deleted: 2, passEnded: false }); // old-2, old-3
    // The parked item is finished now, behind the cursor.
    await db.transaction((em) => em.update(WorkItemEntity, { idempotencyKey: 'old-1' }, { status: 'abandoned' }));
    assert.deepEqual(await purge.runOnce(), { deleted: 1, passEnded: true }); // old-4; the pass stops at recent-done
    assert.deepEqual(await remainingKeys(db), ['old-1', 'recent-done', 'older-after-recent']);
    assert.deepEqual(await purge.runOnce(), { deleted: 1, passEnded: true }); // a new pass from the first id: old-1
    assert.deepEqual(await remainingKeys(db), ['recent-done', 'older-after-recent']);
  });

  it('runs on its own once started, and stop() waits for a run in progress (mysql)', async () => {
    const { db } = await database('mysql');
    for (let i = 0; i < 30; i++) await item(db, `old-${i}`, { day: 0, status: 'done' });
    await item(db, 'open', { day: 0, status: 'pending' });
    const purge = new WorkPurge({ db, clock: handClock(START + 40 * DAY), retentionMs: RETENTION, intervalMs: 10, batchSize: 4, maxBatches: 2 });
    cleanups.push(() => purge.stop());
    purge.start();
    await waitFor('finished items purged', async () => (await remainingKeys(db)).length === 1);
    await purge.stop();
    assert.deepEqual(await remainingKeys(db), ['open']);
  });

  it('a purged item frees its idempotency key; a kept or open one does not (sqlite)', async () => {
    const { db } = await database('sqlite');
    await item(db, 'consume:wo_1', { day: 0, status: 'done' });
    await item(db, 'consume:wo_2', { day: 0, status: 'parked' });
    await new WorkPurge({ db, clock: handClock(START + 40 * DAY), retentionMs: RETENTION }).runOnce();
    const again = (key: string) =>
      db.transaction((em) => enqueueWork(em, { idempotencyKey: key, orderId: null, kind: 'taobao.consume', upstream: 'taobao', payload: {} }));
    assert.equal((await again('consume:wo_1')).enqueued, true);
    assert.equal((await again('consume:wo_2')).enqueued, false);
  });
});
