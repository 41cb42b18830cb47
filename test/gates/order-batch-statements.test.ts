/**
 * The order-store statements a group of admissions batches (lockOrdersStatement, saveOrdersStatement): several
 * orders read and saved in one statement each, every save version-checked, on both databases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityManager } from 'typeorm';
import { admit } from '../../src/domain/order';
import { OrderState } from '../../src/domain/model';
import { checkOrdersSaved, lockedOrderOf, lockOrdersStatement, OrderConcurrentUpdateError, saveOrdersStatement, type OrderSave } from '../../src/orders/order-store';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { runStatements } from '../../src/persistence/statement-batch';
import { DATABASE_KINDS } from '../support/database';
import { startGateFixture, T0 } from './gate-fixture';

/** Locks the orders and admits `count` on each, in memory. */
async function admitOnEach(em: EntityManager, orderIds: string[], count: number, serial: string): Promise<OrderSave[]> {
  const [read] = await runStatements(em, [lockOrdersStatement(em, orderIds)]);
  return read!.rows.map(lockedOrderOf).map((order) => {
    const next = admit(order.snapshot, count, T0, `${serial}-${order.id}`);
    assert.ok(next.ok);
    return { order, next: next.value };
  });
}

for (const kind of DATABASE_KINDS) {
  test(`several orders locked, read and saved in one statement each; a moved version keeps all unsaved (${kind})`, { timeout: 60_000 }, async () => {
    const f = await startGateFixture(kind);
    try {
      const a = await f.issueOrder({ units: 3, code: 'A3' });
      const b = await f.issueOrder({ units: 5, code: 'B5' });

      await f.tdb.db.transaction(async (em) => {
        const saves = await admitOnEach(em, [b.id, a.id, b.id], 2, 's1');
        assert.deepEqual(saves.map((s) => s.order.id), [a.id, b.id].sort(), 'each order once, in id order');
        const [saved] = await runStatements(em, [saveOrdersStatement(saves, T0 + 1)]);
        checkOrdersSaved(saves, saved!.affected);
      });
      const read = async () => {
        const rows = await f.tdb.db.read((em) => em.find(OrderEntity, { where: [{ id: a.id }, { id: b.id }] }));
        const byId = new Map(rows.map((o) => [o.id, o]));
        return [a.id, b.id].map((id) => [byId.get(id)!.available, byId.get(id)!.consumed, byId.get(id)!.state, byId.get(id)!.updatedAt]);
      };
      const afterFirst = await read();
      assert.deepEqual(afterFirst, [
        [1, 2, OrderState.PartiallyConsumed, T0 + 1],
        [3, 2, OrderState.PartiallyConsumed, T0 + 1],
      ]);

      // A writer that bypassed the lock moved one order's version: the save does not write both, and throws.
      await assert.rejects(
        f.tdb.db.transaction(async (em) => {
          const saves = await admitOnEach(em, [a.id, b.id], 1, 's2');
          await em.update(OrderEntity, { id: b.id }, { version: saves.find((s) => s.order.id === b.id)!.order.version + 7 });
          const [saved] = await runStatements(em, [saveOrdersStatement(saves, T0 + 2)]);
          checkOrdersSaved(saves, saved!.affected);
        }),
        OrderConcurrentUpdateError,
      );
      assert.deepEqual(await read(), afterFirst, 'rolled back');
    } finally {
      await f.stop();
    }
  });
}
