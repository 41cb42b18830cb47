/**
 * When the runner looks for work and how much it runs at once: claims raced by another runner, the wake-up on work
 * this process commits, retries looked for when due, and yielding to the foreground without ever stopping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Database } from '../../src/persistence/database';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { enqueueWork, enqueueWorkStatement, type EnqueueWorkInput } from '../../src/work/work-queue';
import { insertStatement } from '../../src/persistence/statement-batch';
import { WorkRunner, type WorkContext, type WorkOutcome, type WorkRunnerOptions } from '../../src/work/work-runner';
import { sleep, waitFor } from '../support/wait';
import { fileScope } from '../support/database';

const { cleanups, database } = fileScope();

function runner(opts: WorkRunnerOptions, handler: (ctx: WorkContext<{ n: number }>) => Promise<WorkOutcome>): WorkRunner {
  const r = new WorkRunner(opts).register('test.job', handler);
  cleanups.push(() => r.stop(0));
  return r;
}

const job = (n: number, orderId: string | null = null): EnqueueWorkInput => ({ idempotencyKey: `job:${n}`, orderId, kind: 'test.job', upstream: 'supplier:x', payload: { n } });

async function enqueue(db: Database, ...inputs: EnqueueWorkInput[]): Promise<void> {
  await db.transaction(async (em) => {
    for (const input of inputs) await enqueueWork(em, input);
  });
}

async function items(db: Database): Promise<WorkItemEntity[]> {
  return db.read((em) => em.find(WorkItemEntity, { order: { id: 'ASC' } }));
}


const allDone = (db: Database) => async () => (await items(db)).every((w) => w.status === 'done');

describe('claims', () => {
  it('two runners claiming the same candidates at once: each item is leased and run once (mysql)', async () => {
    const { db, reopen } = await database('mysql');
    const other = await reopen({ runMigrations: false });
    cleanups.push(() => other.close());
    const orders = ['o_1', 'o_2', 'o_3'];
    for (let n = 0; n < 12; n++) await enqueue(db, job(n, orders[n % 3]!));
    const ran: string[] = [];
    let running = new Set<string>();
    const overlaps: string[] = [];
    const handler = async (ctx: WorkContext<{ n: number }>): Promise<WorkOutcome> => {
      const order = ctx.item.orderId!;
      if (running.has(order)) overlaps.push(ctx.item.idempotencyKey);
      running.add(order);
      ran.push(ctx.item.idempotencyKey);
      await sleep(5);
      running.delete(order);
      return { outcome: 'done' };
    };
    // Both read the same candidates before either leases them: the conditional UPDATE decides.
    const a = runner({ db, concurrency: 12 }, handler);
    const b = runner({ db: other, concurrency: 12 }, handler);
    for (let round = 0; round < 20 && ran.length < 12; round++) {
      running = new Set();
      await Promise.all([a.runOnce(), b.runOnce()]);
    }
    assert.equal(ran.length, 12, 'every item ran');
    assert.equal(new Set(ran).size, 12, 'no item ran twice');
    assert.deepEqual(overlaps, [], 'never two items of one order at once');
    for (const o of orders) {
      const seq = ran.map((k) => Number(k.split(':')[1])).filter((n) => orders[n % 3] === o);
      assert.deepEqual(seq, [...seq].sort((x, y) => x - y), `order ${o} in order`);
    }
    assert.ok((await items(db)).every((w) => w.status === 'done' && w.attempts === 1 && w.leaseOwner === null));
  });

  it('a claim reads the open items, not the history of finished ones (mysql)', async () => {
    const { db, url } = await database('mysql');
    const schema = new URL(url!).pathname.slice(1);
    // 4,000 finished items of 4 orders (1,000 admissions each), then 3 due ones, two of them of those orders.
    const now = Date.now();
    const finished = Array.from({ length: 4_000 }, (_, n): Partial<WorkItemEntity> => ({
      idempotencyKey: `old:${n}`, orderId: `o_${n % 4}`, kind: 'test.job', upstream: 'supplier:x', payload: '{"n":0}', status: n % 50 === 0 ? 'abandoned' : 'done',
      attempts: 1, nextAttemptAt: now - 60_000, createdAt: now - 60_000, updatedAt: now - 60_000,
    }));
    for (let i = 0; i < finished.length; i += 500) await db.atomically((em) => [insertStatement(em, WorkItemEntity, finished.slice(i, i + 500))]);
    await enqueue(db, job(1, 'o_1'), job(2, 'o_2'), job(3, null));
    const ran: number[] = [];
    const r = runner({ db, concurrency: 8 }, async (ctx) => {
      ran.push(ctx.payload.n);
      return { outcome: 'done' };
    });
    // MariaDB's per-table statistics count the rows each table's reads went through, in this test's own database.
    const rowsRead = () =>
      db.read(async (em) => Number(((await em.query(`SELECT ROWS_READ AS n FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'work_items'`, [schema])) as Array<{ n: unknown }>)[0]?.n ?? 0));
    await db.read((em) => em.query('SET GLOBAL userstat = 1'));
    const before = await rowsRead();
    assert.equal(await r.runOnce(), 3);
    const read = (await rowsRead()) - before;
    assert.deepEqual(ran.sort(), [1, 2, 3]);
    // The claim's candidates, their orders' open items, the lease, the completions: tens of rows. Walking the history
    // (all items, or all of the candidates' orders' items): thousands.
    assert.ok(read < 200, `one claim and its completions read ${read} rows of work_items`);
  });
});

describe('waking up', () => {
  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`starts work this process commits at once, not at the next poll (${kind})`, async () => {
      const { db } = await database(kind);
      const started: number[] = [];
      const r = runner({ db, pollIntervalMs: 60_000 }, async (ctx) => {
        started.push(ctx.payload.n);
        return { outcome: 'done' };
      });
      r.start();
      await sleep(200); // its first look found nothing: asleep for a minute now

      // Rolled back: nothing to run.
      await assert.rejects(
        db.transaction(async (em) => {
          await enqueueWork(em, job(0));
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      await enqueue(db, job(1));
      await waitFor('the item enqueued in a transaction', () => started.includes(1), 3_000);
      // A read-free transaction (one round trip on MariaDB, outside typeorm's transaction handling).
      await db.atomically((em) => [enqueueWorkStatement(em, job(2))]);
      await waitFor('the item enqueued atomically', () => started.includes(2), 3_000);
      assert.deepEqual(started, [1, 2]);
    });
  }

  it('looks again when an item it put back is due, not at the next poll (sqlite)', async () => {
    const { db } = await database('sqlite');
    const attempts: number[] = [];
    const r = runner({ db, pollIntervalMs: 60_000, backoffBaseMs: 100, backoffMaxMs: 100 }, async (ctx) => {
      attempts.push(ctx.attempt);
      return ctx.attempt === 1 ? { outcome: 'retry', error: 'upstream busy' } : { outcome: 'done' };
    });
    await enqueue(db, job(1));
    r.start();
    await waitFor('the retry', allDone(db), 3_000);
    assert.deepEqual(attempts, [1, 2]);
  });
});

describe('the foreground first', () => {
  it('runs fewer items at once while requests are in flight, never none (sqlite)', async () => {
    const { db } = await database('sqlite');
    let foreground = 0;
    let now = 0;
    let most = 0;
    const r = runner({ db, concurrency: 4, pollIntervalMs: 20, foregroundInFlight: () => foreground }, async () => {
      most = Math.max(most, ++now);
      await sleep(40);
      now--;
      return { outcome: 'done' };
    });
    r.start();
    const phase = async (load: number, from: number): Promise<number> => {
      foreground = load;
      most = 0;
      await enqueue(db, ...Array.from({ length: 8 }, (_, i) => job(from + i)));
      await waitFor(`8 items with ${load} requests in flight`, allDone(db));
      return most;
    };
    assert.equal(await phase(10, 0), 1, 'a busy foreground leaves one item running: work still progresses');
    assert.equal(await phase(1, 100), 2, 'shared with the requests in flight: 4 / (1 + 1)');
    assert.equal(await phase(0, 200), 4, 'all of it when nobody waits');
  });
});

describe('completions of a batch', () => {
  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`are written in one transaction, and one member whose guard fails is recorded alone without harming the others (${kind})`, async () => {
      const { db } = await database(kind);
      const r = runner({ db, concurrency: 8, pollIntervalMs: 20 }, async (ctx) => ({
        outcome: 'done',
        record: {
          statements: () => [{ sql: 'UPDATE work_items SET last_error = ? WHERE id = ?', params: [`recorded ${ctx.payload.n}`, ctx.item.id] }],
          // Item 3's record "finds its state moved on": it must not be written, and the others must be.
          held: ([updated]) => updated?.affected === 1 && ctx.payload.n !== 3,
        },
      }));
      await enqueue(db, ...Array.from({ length: 6 }, (_, i) => job(i)));
      let transactions = 0;
      const transaction = db.transaction.bind(db);
      db.transaction = ((fn: Parameters<Database['transaction']>[0]) => {
        transactions++;
        return transaction(fn);
      }) as Database['transaction'];
      assert.equal(await r.runOnce(), 6);
      const rows = await items(db);
      assert.ok(rows.every((w) => w.status === 'done'));
      assert.deepEqual(
        rows.map((w) => w.lastError),
        ['recorded 0', 'recorded 1', 'recorded 2', null, 'recorded 4', 'recorded 5'],
      );
      // One merged try, then each of the six alone after item 3's guard failed (item 3 then done without its record).
      assert.equal(transactions, 7);

      await enqueue(db, ...Array.from({ length: 5 }, (_, i) => job(10 + i)));
      transactions = 0;
      assert.equal(await r.runOnce(), 5);
      assert.equal(transactions, 1, 'all guards held: one transaction for the batch');
      assert.ok((await items(db)).slice(6).every((w) => w.status === 'done' && w.lastError === `recorded ${w.idempotencyKey.slice(4)}`));
    });
  }
});
