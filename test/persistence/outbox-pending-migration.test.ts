import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { runPendingMigrations } from '../../src/persistence/database';
import { MIGRATIONS } from '../../migrations';
import { OutboxPending1795460000000 } from '../../migrations/1795460000000-outbox-pending';
import { OutboxPendingEntity } from '../../src/persistence/entities/outbox-event.entity';
import { listOrderEvents } from '../../src/outbox/outbox';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../support/database';

const dbs: TestDatabase[] = [];
after(async () => {
  for (const t of dbs) await t.drop().catch(() => undefined);
});

describe('upgrading to the outbox queue (OutboxPending1795460000000)', () => {
  for (const kind of DATABASE_KINDS) {
    test(`${kind}: events still pending before the upgrade stay queued with their attempts; published ones do not`, async () => {
      const t = await openTestDatabase(kind);
      dbs.push(t);
      const { db } = t;
      // Back to the schema before the migration (its down(), after the down() of every later one), with rows as the
      // relay of that version left them.
      const later = MIGRATIONS.slice(MIGRATIONS.indexOf(OutboxPending1795460000000)).map((m) => m.name);
      for (let i = 0; i < later.length; i++) await db.dataSource.undoLastMigration({ transaction: 'all' });
      const insert = `INSERT INTO outbox_events (event_id, order_id, topic, type, schema_version, payload, created_at, status, attempts, lease_owner, lease_until, published_at)
        VALUES (?, 'o_upgrade', 'order-events', 'order.expired', 1, '', ?, ?, ?, ?, ?, ?)`;
      await db.dataSource.query(insert, ['00000000-0000-4000-8000-000000000001', 1, 'published', 1, null, null, 5]);
      await db.dataSource.query(insert, ['00000000-0000-4000-8000-000000000002', 2, 'pending', 3, null, 9_000, null]);
      await db.dataSource.query(insert, ['00000000-0000-4000-8000-000000000003', 3, 'pending', 0, 'relay:old', 7_000, null]);

      assert.deepEqual(await runPendingMigrations(db), later);
      const queued = await db.read((em) => em.find(OutboxPendingEntity, { order: { id: 'ASC' } }));
      assert.deepEqual(
        queued.map((q) => ({ attempts: q.attempts, retryAt: q.retryAt })),
        [
          { attempts: 3, retryAt: 9_000 },
          { attempts: 0, retryAt: 7_000 },
        ],
      );
      const events = await db.read((em) => listOrderEvents(em, 'o_upgrade'));
      assert.deepEqual(
        events.map((e) => [e.createdAt, e.status]),
        [
          [1, 'published'],
          [2, 'pending'],
          [3, 'pending'],
        ],
      );
    });
  }
});
