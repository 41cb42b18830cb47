/**
 * Taobao order_modify (validity change): extension applied, announced and synced to the supplier by work;
 * shortening refused locally and flagged, acked 200; a supplier without the capability -> hand-change exception.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ValidityWindow } from '../../src/domain/model';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { handleValidityChangeNotice } from '../../src/refunds/refund-intake';
import { REFUND_EXCEPTION_KINDS, REFUND_WORK_KINDS } from '../../src/refunds/refund-ports';
import type { SandboxAdapter } from '../../src/suppliers/sandbox/sandbox-adapter';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import { assertEveryLedgerHolds, DAY, directoryOf, drain, eventTypes, exceptionsOf, issuedOrder, refundRunner, sandbox, silentLog, T0, TestClock, workItems } from './refund-fixtures';

/** The real sandbox adapter, with its validity changes recorded. */
function recordingValidity(adapter: SandboxAdapter): { adapter: SandboxAdapter; calls: ValidityWindow[] } {
  const calls: ValidityWindow[] = [];
  const proxy = new Proxy(adapter, {
    get(target, prop) {
      if (prop === 'changeValidity') {
        return async (...args: Parameters<SandboxAdapter['changeValidity']>) => {
          await target.changeValidity(...args);
          calls.push(args[1]);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as Function).bind(target) : v;
    },
  });
  return { adapter: proxy, calls };
}

for (const kind of DATABASE_KINDS) {
  test(`${kind}: validity extension is applied, announced and synced; shortening refused and flagged`, { timeout: 60_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    try {
      const db = tdb.db;
      const clock = new TestClock();
      const { adapter, calls } = recordingValidity(sandbox({}, clock));
      const orderId = await issuedOrder(db, adapter, { purchased: 2, validEnd: T0 + 10 * DAY });
      const runner = refundRunner(db, clock, { suppliers: directoryOf(adapter) });
      const deps = { clock, log: silentLog };
      const validity = async () => db.read((em) => em.findOneOrFail(OrderEntity, { where: { id: orderId } }));

      const extended = { start: T0, end: T0 + 40 * DAY };
      assert.equal((await db.transaction((em) => handleValidityChangeNotice(em, { orderId, validity: extended }, deps))).ackCode, 200);
      assert.equal((await validity()).validEnd, extended.end);
      assert.deepEqual(await eventTypes(db, orderId), ['validity.changed']);
      const sync = (await workItems(db)).filter((w) => w.kind === REFUND_WORK_KINDS.changeValidity);
      assert.equal(sync.length, 1);
      await drain(runner);
      assert.deepEqual(calls, [extended], 'the supplier got the new window');

      // The same notice again: nothing new.
      await db.transaction((em) => handleValidityChangeNotice(em, { orderId, validity: extended }, deps));
      assert.equal((await workItems(db)).filter((w) => w.kind === REFUND_WORK_KINDS.changeValidity).length, 1);
      assert.deepEqual(await eventTypes(db, orderId), ['validity.changed']);

      // Shortening: refused, flagged, still 200.
      const shorter = { start: T0, end: T0 + 5 * DAY };
      assert.equal((await db.transaction((em) => handleValidityChangeNotice(em, { orderId, validity: shorter }, deps))).ackCode, 200);
      assert.equal((await validity()).validEnd, extended.end, 'unchanged');
      const ex = await exceptionsOf(db, orderId);
      assert.deepEqual(ex.map((e) => e.kind), [REFUND_EXCEPTION_KINDS.validityShortened]);
      assert.match(ex[0]!.detail, /VALIDITY_SHORTENED/);
      await drain(runner);
      assert.equal(calls.length, 1, 'nothing sent for the refused change');
      await assertEveryLedgerHolds(db);
    } finally {
      await tdb.drop();
    }
  });
}

test('sqlite: a supplier without validity changes by API -> operator exception to change it by hand', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  try {
    const db = tdb.db;
    const clock = new TestClock();
    const supplier = sandbox({ capabilities: { validityChange: false } }, clock);
    const orderId = await issuedOrder(db, supplier, { purchased: 1, validEnd: T0 + DAY });
    const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });
    await db.transaction((em) => handleValidityChangeNotice(em, { orderId, validity: { start: T0, end: T0 + 9 * DAY } }, { clock, log: silentLog }));
    await drain(runner);
    const ex = await exceptionsOf(db, orderId);
    assert.deepEqual(ex.map((e) => e.kind), [REFUND_EXCEPTION_KINDS.validityManual]);
    assert.match(ex[0]!.detail, /by hand/);
    assert.ok((await workItems(db)).every((w) => w.status === 'done'));
    await assertEveryLedgerHolds(db);
  } finally {
    await tdb.drop();
  }
});
