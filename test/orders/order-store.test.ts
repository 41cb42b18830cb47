import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OrderState } from '../../src/domain/model';
import { newLedger } from '../../src/domain/ledger';
import { admit, markIssued, startIssue, requestRefund } from '../../src/domain/order';
import { OrderRepository } from '../../src/persistence/order-repository';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { loadOrderForUpdate, mutateOrder, OrderConcurrentUpdateError, OrderNotFoundError, phaseOf, saveOrderSnapshot } from '../../src/orders/order-store';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';

const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const HOUR = 3_600_000;

for (const kind of DATABASE_KINDS) {
  test(`order store on ${kind}: operations apply and persist, rejections change nothing, stale writers are refused`, { timeout: 60_000 }, async () => {
    const tdb = await openTestDatabase(kind);
    try {
      const repo = new OrderRepository(tdb.db);
      const order = await repo.insert({
        taobaoOrderId: '900001', token: 't', unitPriceFen: 5000, totalFeeFen: 15000, noticeType: 0,
        validStart: T0, validEnd: T0 + 24 * HOUR, state: OrderState.Received, ledger: newLedger(3), createdAt: T0,
      });

      // received -> issuing -> issued, each saved and read back
      for (const op of [startIssue, markIssued]) {
        const r = await tdb.db.transaction((em) => mutateOrder(em, order.id, T0 + 1, op));
        assert.equal(r.ok, true);
      }
      const issued = await repo.findById(order.id);
      assert.equal(issued!.state, OrderState.Issued);

      const admitted = await tdb.db.transaction((em) => mutateOrder(em, order.id, T0 + HOUR, (s) => admit(s, 2, T0 + HOUR, 'SER1')));
      assert.ok(admitted.ok);
      const afterAdmit = await repo.findById(order.id);
      assert.equal(afterAdmit!.state, OrderState.PartiallyConsumed);
      assert.deepEqual(afterAdmit!.ledger, { purchased: 3, available: 1, consumed: 2, refundPending: 0, refunded: 0, expired: 0 });
      assert.equal(afterAdmit!.updatedAt, T0 + HOUR);

      // a refund above what is refundable is a business rejection and changes nothing
      const tooMuch = await tdb.db.transaction((em) => mutateOrder(em, order.id, T0 + 2 * HOUR, (s) => requestRefund(s, 2, T0 + 2 * HOUR)));
      assert.equal(tooMuch.ok, false);
      if (!tooMuch.ok) {
        assert.equal(tooMuch.reason, 'EXCEEDS_REFUNDABLE');
        assert.equal(tooMuch.details?.refundable, 1);
      }
      assert.deepEqual((await repo.findById(order.id))!.ledger, afterAdmit!.ledger);

      // a writer holding a stale version is refused, and its transaction rolls back
      await assert.rejects(
        tdb.db.transaction(async (em) => {
          const loaded = await loadOrderForUpdate(em, order.id);
          await em.getRepository(OrderEntity).update({ id: order.id }, { version: loaded.entity.version + 5 });
          await saveOrderSnapshot(em, loaded, loaded.snapshot, T0 + 3 * HOUR);
        }),
        OrderConcurrentUpdateError,
      );
      assert.equal((await repo.findById(order.id))!.updatedAt, T0 + HOUR, 'rolled back');

      await assert.rejects(tdb.db.transaction((em) => mutateOrder(em, 'o_missing', T0, startIssue)), OrderNotFoundError);

      // concurrent admissions through the store never oversell: 10 parallel single-unit admits of the last unit
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          tdb.db.transaction((em) => mutateOrder(em, order.id, T0 + 4 * HOUR, (s) => admit(s, 1, T0 + 4 * HOUR, `PAR${i}`))),
        ),
      );
      const applied = results.filter((r) => r.status === 'fulfilled' && r.value.ok).length;
      assert.equal(applied, 1, 'exactly one of the parallel admissions gets the last unit');
      const final = (await repo.findById(order.id))!;
      assert.equal(final.ledger.available, 0);
      assert.equal(final.ledger.consumed, 3);
      assert.equal(final.state, OrderState.Consumed);
    } finally {
      await tdb.drop();
    }
  });
}

test('phaseOf tells a never-issued CLOSED order from an issued one that ended closed', () => {
  const zero = { purchased: 2, available: 2, consumed: 0, refundPending: 0, refunded: 0, expired: 0 };
  assert.equal(phaseOf(OrderState.Closed, zero), 'closed');
  assert.equal(phaseOf(OrderState.Closed, { ...zero, available: 0, consumed: 1, refunded: 1 }), 'issued');
  assert.equal(phaseOf(OrderState.Received, zero), 'received');
  assert.equal(phaseOf(OrderState.Issuing, zero), 'issuing');
  assert.equal(phaseOf(OrderState.IssueFailed, zero), 'issue-failed');
  assert.equal(phaseOf(OrderState.Expired, { ...zero, available: 0, expired: 2 }), 'issued');
});
