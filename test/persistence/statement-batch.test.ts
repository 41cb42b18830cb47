import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { InboundMessageEntity } from '../../src/persistence/entities/inbound-message.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { isUniqueViolation } from '../../src/persistence/errors';
import { insertStatement, runStatements } from '../../src/persistence/statement-batch';
import { enqueueWorkStatement } from '../../src/work/work-queue';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';

for (const kind of DATABASE_KINDS) {
  describe(`runStatements (${kind})`, async () => {
    const t = await openTestDatabase(kind);
    after(() => t.drop());
    const inbound = (dedupKey: string) => ({ source: 'batch', dedupKey, method: 'send', receivedAt: 1, responseStatus: 200, responseBody: 'ok' });

    test('runs every statement in order and answers each one: insert ids, affected rows, selected rows', async () => {
      const results = await t.db.transaction((em) =>
        runStatements(em, [
          insertStatement(em, InboundMessageEntity, inbound('a')),
          insertStatement(em, InboundMessageEntity, inbound('a'), { ignore: true }),
          { sql: 'UPDATE inbound_messages SET response_body = ? WHERE source = ? AND dedup_key = ?', params: ['changed', 'batch', 'a'] },
          { sql: 'SELECT response_body AS body FROM inbound_messages WHERE source = ? ORDER BY id', params: ['batch'] },
        ]),
      );
      assert.equal(results.length, 4);
      assert.equal(results[0]!.affected, 1);
      assert.ok(results[0]!.insertId > 0);
      assert.equal(results[1]!.affected, 0, 'the ignored duplicate wrote nothing');
      assert.equal(results[2]!.affected, 1);
      assert.deepEqual(results[3]!.rows, [{ body: 'changed' }]);
    });

    test('a failing statement throws its own error, later ones do not run, and the transaction rolls back', async () => {
      const work = { idempotencyKey: 'batch:1', orderId: null, kind: 'test.batch', upstream: 'taobao', payload: {} };
      const err = await t.db
        .transaction((em) =>
          runStatements(em, [
            enqueueWorkStatement(em, work),
            insertStatement(em, InboundMessageEntity, inbound('a')), // duplicate of the first test's row
            insertStatement(em, InboundMessageEntity, inbound('b')),
          ]),
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(isUniqueViolation(err), `expected a unique violation, got ${String(err)}`);
      const counts = await t.db.read(async (em) => ({
        work: await em.countBy(WorkItemEntity, { idempotencyKey: 'batch:1' }),
        b: await em.countBy(InboundMessageEntity, { source: 'batch', dedupKey: 'b' }),
      }));
      assert.deepEqual(counts, { work: 0, b: 0 });
    });

    test('atomically: statements that need no reads commit together, or not at all', async () => {
      const results = await t.db.atomically((em) => [
        insertStatement(em, InboundMessageEntity, inbound('x1')),
        enqueueWorkStatement(em, { idempotencyKey: 'batch:x1', orderId: null, kind: 'test.batch', upstream: 'taobao', payload: {} }),
      ]);
      assert.deepEqual(
        results.map((r) => r.affected),
        [1, 1],
      );
      await assert.rejects(
        t.db.atomically((em) => [
          enqueueWorkStatement(em, { idempotencyKey: 'batch:x2', orderId: null, kind: 'test.batch', upstream: 'taobao', payload: {} }),
          insertStatement(em, InboundMessageEntity, inbound('x1')),
        ]),
        (err: unknown) => isUniqueViolation(err),
      );
      // Nothing of the failed batch stays, and the connection it used is left without an open transaction.
      assert.equal(await t.db.read((em) => em.countBy(WorkItemEntity, { idempotencyKey: 'batch:x2' })), 0);
      await Promise.all(Array.from({ length: 12 }, (_, i) => t.db.atomically((em) => [insertStatement(em, InboundMessageEntity, inbound(`y${i}`))])));
      assert.equal(await t.db.read((em) => em.countBy(WorkItemEntity, { idempotencyKey: 'batch:x2' })), 0);
      assert.equal(await t.db.read((em) => em.countBy(InboundMessageEntity, { source: 'batch' })), 2 + 12);
    });

    test('atomically, many at once: each caller gets its own results or its own error; the others commit', async () => {
      // 40 at once are merged into shared transactions on MariaDB (group-commit.ts); every 5th repeats a key
      // already stored, which fails its merged transaction, and then only that caller.
      await t.db.atomically((em) => [insertStatement(em, InboundMessageEntity, inbound('g-taken'))]);
      const outcomes = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          t.db
            .atomically((em) => [
              enqueueWorkStatement(em, { idempotencyKey: `group:${i}`, orderId: null, kind: 'test.batch', upstream: 'taobao', payload: { i } }),
              insertStatement(em, InboundMessageEntity, inbound(i % 5 === 0 ? 'g-taken' : `g${i}`)),
            ])
            .then(
              (r) => ({ i, affected: r.map((x) => x.affected) }),
              (err: unknown) => ({ i, duplicate: isUniqueViolation(err) }),
            ),
        ),
      );
      for (const o of outcomes) assert.deepEqual(o, o.i % 5 === 0 ? { i: o.i, duplicate: true } : { i: o.i, affected: [1, 1] });
      const stored = await t.db.read((em) => em.find(WorkItemEntity, { where: { kind: 'test.batch' }, select: { idempotencyKey: true, payload: true } }));
      const groupKeys = stored.filter((w) => w.idempotencyKey.startsWith('group:')).map((w) => Number(w.idempotencyKey.slice(6)));
      assert.deepEqual(groupKeys.sort((a, b) => a - b), outcomes.filter((o) => o.i % 5 !== 0).map((o) => o.i));
    });

    test('outside a transaction it refuses instead of splitting the statements over pooled connections', async () => {
      await assert.rejects(t.db.read((em) => runStatements(em, [insertStatement(em, InboundMessageEntity, inbound('c'))])), /transaction/);
    });
  });
}
