/**
 * Group commit of Redeems (AdmissionDesk.redeem): calls that arrive while others are being decided are decided
 * together, in arrival order, in one transaction, each with the answer it would get alone; a group whose
 * transaction fails is decided again one call at a time, without losing or doubling an admission.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityManager } from 'typeorm';
import { AdmissionDesk, type AdmissionAnswer } from '../../src/gates/admission-desk';
import type { Database } from '../../src/persistence/database';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { OutboxEventEntity } from '../../src/persistence/entities/outbox-event.entity';
import { VoucherEntity } from '../../src/persistence/entities/voucher.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { WriteOffEntity } from '../../src/persistence/entities/write-off.entity';
import { DATABASE_KINDS } from '../support/database';
import { HOUR, startGateFixture, T0, type GateFixture } from './gate-fixture';

/** The fixture's database, counting transactions; `around` may change how the n-th one runs. */
function watchedDatabase(db: Database, around?: (n: number, run: () => Promise<unknown>) => Promise<unknown>): { db: Database; transactions(): number } {
  let transactions = 0;
  const watched: Database = {
    dataSource: db.dataSource,
    kind: db.kind,
    transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
      const n = ++transactions;
      const run = () => db.transaction(fn);
      return (around ? around(n, run) : run()) as Promise<T>;
    },
    atomically: (build) => db.atomically(build),
    read: (fn) => db.read(fn),
    ping: (timeoutMs) => db.ping(timeoutMs),
    close: () => db.close(),
  };
  return { db: watched, transactions: () => transactions };
}

const code = (c: string) => ({ kind: 'code' as const, code: c });

/** What the database holds for the order of this code. */
async function stateOf(f: GateFixture, orderId: string) {
  return f.tdb.db.read(async (em) => {
    const o = await em.findOneByOrFail(OrderEntity, { id: orderId });
    return {
      available: o.available,
      consumed: o.consumed,
      voucherRemaining: (await em.findOneByOrFail(VoucherEntity, { orderId })).remaining,
      writeOffs: await em.countBy(WriteOffEntity, { orderId }),
      events: await em.countBy(OutboxEventEntity, { orderId, type: 'write-off.recorded' }),
      work: await em.countBy(WorkItemEntity, { orderId, kind: 'taobao.consume' }),
    };
  });
}

for (const kind of DATABASE_KINDS) {
  test(`Redeems arriving together are decided in one transaction, in arrival order, each answered as alone (${kind})`, { timeout: 60_000 }, async () => {
    const f = await startGateFixture(kind);
    try {
      await f.provision('GATE-G');
      const device = (await f.devices.get('GATE-G'))!;
      const pace = await f.issueOrder({ units: 10, code: 'PACE' });
      const three = await f.issueOrder({ units: 3, code: 'THREE' });
      await f.issueOrder({ units: 1, code: 'LATER', validFrom: T0 + HOUR });
      const done = await f.issueOrder({ units: 2, code: 'DONE' });
      const earlier = await f.desk.redeem(device, code('DONE'), 1, 'done-1');
      assert.equal(earlier.reason, 'ADMITTED');

      // A fresh desk, sent every call before any is decided: the first two calls start a group each at once, the
      // others wait and form one group.
      const watched = watchedDatabase(f.tdb.db);
      const desk = new AdmissionDesk({ db: watched.db, products: f.products, protector: f.protector, clock: f.clock });
      const sent: Array<[string, number, string]> = [
        ['PACE', 1, 'p0'],
        ['PACE', 1, 'p1'],
        ['THREE', 2, 'a'],
        ['THREE', 2, 'b'],
        ['THREE', 1, 'c'],
        ['THREE', 1, 'd'],
        ['NOPE', 1, 'e'],
        ['LATER', 1, 'f'],
        ['DONE', 1, 'done-1'],
        ['THREE', 1, 'a'],
        ['LATER', 1, 'c'],
      ];
      const answers: AdmissionAnswer[] = await Promise.all(sent.map(([c, count, nonce]) => desk.redeem(device, code(c), count, nonce)));
      assert.equal(watched.transactions(), 3);

      const summary = answers.map((a) => [a.reason, a.remaining, a.replayed ?? false]);
      assert.deepEqual(summary.slice(2), [
        ['ADMITTED', 1, false],
        ['COUNT_TOO_LARGE', 1, false], // sees the admission just before it in the same transaction
        ['ADMITTED', 0, false],
        ['USED_UP', 0, false],
        ['UNKNOWN_CODE', 0, false],
        ['NOT_YET_VALID', 1, false],
        ['ADMITTED', 1, true], // the earlier admission under this nonce, nothing new
        ['ADMITTED', 0, true], // the nonce of the third call, admitted in this very group
        ['NONCE_REUSED', 0, false], // the nonce of the fifth call, on another code
      ]);
      assert.deepEqual(summary.slice(0, 2).map((s) => s[0]), ['ADMITTED', 'ADMITTED']);
      assert.equal(answers[8]!.writeOffId, earlier.writeOffId);
      assert.equal(answers[9]!.writeOffId, answers[2]!.writeOffId);
      assert.equal(answers[2]!.orderId, three.id);

      assert.deepEqual(await stateOf(f, three.id), { available: 0, consumed: 3, voucherRemaining: 0, writeOffs: 2, events: 2, work: 2 });
      assert.deepEqual(await stateOf(f, pace.id), { available: 8, consumed: 2, voucherRemaining: 8, writeOffs: 2, events: 2, work: 2 });
      assert.deepEqual(await stateOf(f, done.id), { available: 1, consumed: 1, voucherRemaining: 1, writeOffs: 1, events: 1, work: 1 });
    } finally {
      await f.stop();
    }
  });

  test(`a group whose transaction fails is decided again call by call: nothing lost, nothing admitted twice (${kind})`, { timeout: 60_000 }, async () => {
    const f = await startGateFixture(kind);
    try {
      const order = await f.issueOrder({ units: 6, code: 'SIX' });
      await f.issueOrder({ units: 10, code: 'PACE' });
      await f.provision('GATE-F');
      const device = (await f.devices.get('GATE-F'))!;
      /**
       * A fresh desk whose third transaction - the group of the calls sent after the first two (see the test above) -
       * fails: before anything is written (a lock wait timeout), or after its commit landed (the answer to COMMIT lost).
       */
      const burst = (failure: 'before commit' | 'after commit', nonces: string[]) => {
        const watched = watchedDatabase(f.tdb.db, async (n, run) => {
          if (n !== 3) return run();
          if (failure === 'before commit') throw new Error('Lock wait timeout exceeded; try restarting transaction');
          await run();
          throw new Error('Connection lost: The server closed the connection.');
        });
        const desk = new AdmissionDesk({ db: watched.db, products: f.products, protector: f.protector, clock: f.clock });
        const pace = [desk.redeem(device, code('PACE'), 1, `${nonces[0]}-p0`), desk.redeem(device, code('PACE'), 1, `${nonces[0]}-p1`)];
        return Promise.all([...pace, ...nonces.map((n) => desk.redeem(device, code('SIX'), 1, n))]);
      };

      const first = (await burst('before commit', ['x1', 'x2', 'x3'])).slice(2);
      assert.deepEqual(first.map((a) => [a.reason, a.remaining, a.replayed ?? false]), [
        ['ADMITTED', 5, false],
        ['ADMITTED', 4, false],
        ['ADMITTED', 3, false],
      ]);

      const second = (await burst('after commit', ['y1', 'y2', 'y3'])).slice(2);
      // Each call, alone, finds its admission recorded by the group's commit and answers with it.
      assert.deepEqual(second.map((a) => [a.reason, a.replayed]), [
        ['ADMITTED', true],
        ['ADMITTED', true],
        ['ADMITTED', true],
      ]);
      assert.equal(new Set(second.map((a) => a.writeOffId)).size, 3);
      assert.deepEqual(await stateOf(f, order.id), { available: 0, consumed: 6, voucherRemaining: 0, writeOffs: 6, events: 6, work: 6 });
    } finally {
      await f.stop();
    }
  });
}
