/**
 * Taobao cancel / rights protection -> refund pending -> supplier request -> audit (poll or callback), on SQLite
 * and MariaDB, with the real sandbox supplier adapter behind the durable work runner.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handleCancelNotice } from '../../src/refunds/refund-intake';
import { onRefundAudit } from '../../src/refunds/refund-audit';
import { REFUND_EXCEPTION_KINDS, REFUND_WORK_KINDS } from '../../src/refunds/refund-ports';
import { buildSandboxCallback } from '../../src/suppliers/sandbox/sandbox-adapter';
import type { SandboxAdapter } from '../../src/suppliers/sandbox/sandbox-adapter';
import type { Database } from '../../src/persistence/database';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';
import {
  admitUnits,
  assertEveryLedgerHolds,
  directoryOf,
  drain,
  eventTypes,
  exceptionsOf,
  issuedOrder,
  ledger,
  refundRunner,
  refundsOf,
  sandbox,
  silentLog,
  TestClock,
  workItems,
} from './refund-fixtures';

const SECRET = 'sandbox-callback-secret';

async function withDb(kind: 'sqlite' | 'mysql', fn: (db: Database) => Promise<void>): Promise<void> {
  const tdb = await openTestDatabase(kind);
  try {
    await fn(tdb.db);
    await assertEveryLedgerHolds(tdb.db);
  } finally {
    await tdb.drop();
  }
}

function auditCallback(supplier: SandboxAdapter, p: { eventId: string; orderCode: string; batchNo: string; approved: boolean; reason?: string }) {
  const signed = buildSandboxCallback(SECRET, { type: 'refund_audit', ...p });
  const parsed = supplier.parseCallback({ method: 'POST', path: '/callbacks/sandbox', query: {}, headers: signed.headers, rawBody: Buffer.from(signed.body) });
  assert.ok(parsed.ok, 'the signed callback parses');
  if (!parsed.ok || parsed.callback.type !== 'refund_audit') throw new Error('not a refund audit callback');
  return parsed.callback;
}

for (const kind of DATABASE_KINDS) {
  test(`${kind}: Taobao cancel -> pending audit -> approved by poll; a later callback has no effect`, { timeout: 60_000 }, async () => {
    await withDb(kind, async (db) => {
      const clock = new TestClock();
      const supplier = sandbox({ auditPendingQueries: 1 }, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 3 });
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier), settings: { pollBaseMs: 60_000, pollMaxMs: 120_000 } });

      const ack = await db.transaction((em) => handleCancelNotice(em, { orderId, units: 2, origin: 'taobao_cancel' }, { clock, log: silentLog }));
      assert.equal(ack.ackCode, 200);
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 1, consumed: 0, refundPending: 2, refunded: 0, expired: 0 });
      let [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.id, ack.refund!.id);
      assert.equal(refund!.auditState, 'pending_submit');
      assert.equal(refund!.origin, 'taobao_cancel');
      assert.equal(Number(refund!.buyerRefundFen), 2 * 8800 - 100, 'full ratio minus the 1-yuan code fee');
      const request = (await workItems(db)).find((w) => w.kind === REFUND_WORK_KINDS.requestRefund)!;
      assert.equal(request.idempotencyKey, `refund:${refund!.id}`);
      assert.equal(request.upstream, 'supplier:sbx-test');

      await drain(runner);
      [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.auditState, 'pending_audit');
      assert.match(refund!.supplierBatchNo ?? '', /^SBXR-/);
      assert.deepEqual(await supplier.queryOrder({ ourOrderCode: orderId, supplierOrderId: '' }).then((s) => s.refundableQuantity), 1, 'the supplier holds 2 pending');

      // The first poll is due after the base delay, not before; the sandbox answers "pending" once.
      await drain(runner);
      assert.equal((await refundsOf(db, orderId))[0]!.auditState, 'pending_audit');
      clock.advance(60_000);
      await drain(runner);
      assert.equal((await refundsOf(db, orderId))[0]!.auditState, 'pending_audit', 'first poll: still pending');
      clock.advance(120_000);
      await drain(runner);
      [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.auditState, 'approved');
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 1, consumed: 0, refundPending: 0, refunded: 2, expired: 0 });

      const before = await eventTypes(db, orderId);
      assert.deepEqual(before, ['refund.requested', 'refund.approved']);
      const late = await db.transaction((em) =>
        onRefundAudit(em, auditCallback(supplier, { eventId: 'ev-1', orderCode: orderId, batchNo: refund!.supplierBatchNo!, approved: true }), { clock, log: silentLog }),
      );
      assert.equal(late, 'already_final');
      assert.deepEqual(await eventTypes(db, orderId), before, 'no second event');
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 1, consumed: 0, refundPending: 0, refunded: 2, expired: 0 });
      assert.deepEqual(await exceptionsOf(db, orderId), []);
      assert.ok((await workItems(db)).every((w) => w.status === 'done'), 'no work left');
    });
  });

  test(`${kind}: approved by callback; the duplicate callback and the later poll have no effect`, { timeout: 60_000 }, async () => {
    await withDb(kind, async (db) => {
      const clock = new TestClock();
      const supplier = sandbox({ auditPendingQueries: 1000 }, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 2 });
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });
      await db.transaction((em) => handleCancelNotice(em, { orderId, units: 2, origin: 'rights_protection' }, { clock, log: silentLog }));
      await drain(runner);
      const [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.auditState, 'pending_audit');

      const cb = auditCallback(supplier, { eventId: 'ev-9', orderCode: orderId, batchNo: refund!.supplierBatchNo!, approved: true });
      assert.equal(await db.transaction((em) => onRefundAudit(em, cb, { clock, log: silentLog })), 'applied');
      assert.equal(await db.transaction((em) => onRefundAudit(em, cb, { clock, log: silentLog })), 'already_final');
      assert.deepEqual(await ledger(db, orderId), { purchased: 2, available: 0, consumed: 0, refundPending: 0, refunded: 2, expired: 0 });
      // The next audit poll was due in the future; the decision closed it instead of leaving it pending until then.
      assert.deepEqual((await workItems(db)).filter((w) => w.status !== 'done'), []);

      clock.advance(3_600_000);
      await drain(runner);
      assert.deepEqual(await eventTypes(db, orderId), ['refund.requested', 'refund.approved']);
      assert.equal((await refundsOf(db, orderId))[0]!.auditState, 'approved');
      assert.ok((await workItems(db)).every((w) => w.status === 'done'));
    });
  });

  test(`${kind}: audit rejected -> units back to available, refund.rejected, operator exception`, { timeout: 60_000 }, async () => {
    await withDb(kind, async (db) => {
      const clock = new TestClock();
      const supplier = sandbox({ auditDecision: 'reject' }, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 3 });
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier), settings: { pollBaseMs: 1000 } });
      await db.transaction((em) => handleCancelNotice(em, { orderId, units: 1, origin: 'taobao_cancel' }, { clock, log: silentLog }));
      await drain(runner);
      clock.advance(1000);
      await drain(runner);
      const [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.auditState, 'rejected');
      assert.equal(refund!.rejectReason, 'refused by sandbox audit');
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 3, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
      assert.deepEqual(await eventTypes(db, orderId), ['refund.requested', 'refund.rejected', 'exception.raised']);
      const ex = await exceptionsOf(db, orderId);
      assert.deepEqual(ex.map((e) => e.kind), [REFUND_EXCEPTION_KINDS.refundRejected]);
      assert.match(ex[0]!.detail, /rejected by the supplier \(poll\)/);
    });
  });

  test(`${kind}: supplier refuses the request (it saw admissions we missed): its count adopted, units back, exception`, { timeout: 60_000 }, async () => {
    await withDb(kind, async (db) => {
      const clock = new TestClock();
      const supplier = sandbox({}, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 3 });
      assert.ok(supplier.recordAdmission(orderId, 2), 'two visitors passed the supplier gate, unknown to us');
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });
      await db.transaction((em) => handleCancelNotice(em, { orderId, units: 3, origin: 'taobao_cancel' }, { clock, log: silentLog }));
      assert.equal((await ledger(db, orderId)).refundPending, 3);
      await drain(runner);
      const [refund] = await refundsOf(db, orderId);
      assert.equal(refund!.auditState, 'rejected');
      assert.match(refund!.rejectReason!, /OVER_QUANTITY/);
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 3, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
      const ex = await exceptionsOf(db, orderId);
      assert.equal(ex.length, 1);
      assert.match(ex[0]!.detail, /supplier says 1 refundable/);
      assert.ok((await eventTypes(db, orderId)).includes('refund.rejected'));
    });
  });

  test(`${kind}: cancel of more units than refundable refunds what is left and flags the difference; never negative`, { timeout: 60_000 }, async () => {
    await withDb(kind, async (db) => {
      const clock = new TestClock();
      const supplier = sandbox({}, clock);
      const orderId = await issuedOrder(db, supplier, { purchased: 3 });
      await admitUnits(db, supplier, orderId, 2, clock.now() + 1000);
      const ack = await db.transaction((em) => handleCancelNotice(em, { orderId, units: 3, origin: 'taobao_cancel' }, { clock, log: silentLog }));
      assert.equal(ack.ackCode, 200);
      assert.equal(ack.refund!.quantity, 1);
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 0, consumed: 2, refundPending: 1, refunded: 0, expired: 0 });
      const ex = await exceptionsOf(db, orderId);
      assert.deepEqual(ex.map((e) => e.kind), [REFUND_EXCEPTION_KINDS.cancelShortfall]);
      assert.match(ex[0]!.detail, /3 unit\(s\) but only 1 refundable/);

      // Nothing left at all: still ack 200, no refund, one more exception.
      await db.transaction((em) => handleCancelNotice(em, { orderId, units: 1, origin: 'taobao_cancel' }, { clock, log: silentLog }));
      assert.equal((await refundsOf(db, orderId)).length, 1);
      assert.equal((await exceptionsOf(db, orderId)).length, 2);
      const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier) });
      await drain(runner);
      clock.advance(60_000);
      await drain(runner);
      assert.deepEqual(await ledger(db, orderId), { purchased: 3, available: 0, consumed: 2, refundPending: 0, refunded: 1, expired: 0 });
    });
  });
}

test('sqlite: an audit still pending after the timeout raises one exception and polling goes on', { timeout: 60_000 }, async () => {
  await withDb('sqlite', async (db) => {
    const clock = new TestClock();
    const supplier = sandbox({ auditPendingQueries: 1000 }, clock);
    const orderId = await issuedOrder(db, supplier, { purchased: 2 });
    const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier), settings: { pollBaseMs: 60_000, pollMaxMs: 120_000, auditTimeoutMs: 10 * 60_000 } });
    await db.transaction((em) => handleCancelNotice(em, { orderId, units: 2, origin: 'taobao_cancel' }, { clock, log: silentLog }));
    await drain(runner);
    for (let i = 0; i < 15; i++) {
      clock.advance(120_000);
      await drain(runner);
    }
    const timeouts = (await exceptionsOf(db, orderId)).filter((e) => e.kind === REFUND_EXCEPTION_KINDS.auditTimeout);
    assert.equal(timeouts.length, 1, 'raised once');
    const polls = (await workItems(db)).filter((w) => w.kind === REFUND_WORK_KINDS.pollRefundAudit);
    assert.ok(polls.length >= 14, `polled on (${polls.length} polls)`);
    assert.equal(polls.filter((w) => w.status === 'pending').length, 1, 'the next poll is scheduled');
    assert.equal((await refundsOf(db, orderId))[0]!.auditState, 'pending_audit');
    assert.equal((await ledger(db, orderId)).refundPending, 2);
  });
});

test('sqlite: a callback-only supplier gets an audit-timeout watch instead of polls', { timeout: 60_000 }, async () => {
  await withDb('sqlite', async (db) => {
    const clock = new TestClock();
    const supplier = sandbox({ capabilities: { auditPolling: false } }, clock);
    const orderId = await issuedOrder(db, supplier, { purchased: 1 });
    const runner = refundRunner(db, clock, { suppliers: directoryOf(supplier), settings: { auditTimeoutMs: 3_600_000 } });
    await db.transaction((em) => handleCancelNotice(em, { orderId, units: 1, origin: 'taobao_cancel' }, { clock, log: silentLog }));
    await drain(runner);
    clock.advance(3_599_000);
    await drain(runner);
    assert.equal((await exceptionsOf(db, orderId)).length, 0, 'not before the timeout');
    clock.advance(1_000);
    await drain(runner);
    assert.deepEqual((await exceptionsOf(db, orderId)).map((e) => e.kind), [REFUND_EXCEPTION_KINDS.auditTimeout]);
    assert.ok((await workItems(db)).every((w) => w.status === 'done'), 'nothing more scheduled');

    const [refund] = await refundsOf(db, orderId);
    const cb = auditCallback(supplier, { eventId: 'late', orderCode: orderId, batchNo: refund!.supplierBatchNo!, approved: false, reason: '景区不同意' });
    assert.equal(await db.transaction((em) => onRefundAudit(em, cb, { clock, log: silentLog })), 'applied');
    assert.deepEqual(await ledger(db, orderId), { purchased: 1, available: 1, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
  });
});

test('sqlite: a refund-audit callback matching no refund is an operator exception, not a guess', { timeout: 60_000 }, async () => {
  await withDb('sqlite', async (db) => {
    const clock = new TestClock();
    const supplier = sandbox({}, clock);
    const orderId = await issuedOrder(db, supplier, { purchased: 1 });
    const cb = auditCallback(supplier, { eventId: 'x', orderCode: orderId, batchNo: 'SBXR-NOPE', approved: true });
    assert.equal(await db.transaction((em) => onRefundAudit(em, cb, { clock, log: silentLog })), 'unknown_refund');
    assert.deepEqual((await exceptionsOf(db, orderId)).map((e) => e.kind), [REFUND_EXCEPTION_KINDS.auditUnmatched]);
    assert.deepEqual(await ledger(db, orderId), { purchased: 1, available: 1, consumed: 0, refundPending: 0, refunded: 0, expired: 0 });
  });
});
