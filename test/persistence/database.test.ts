import { MIGRATIONS } from '../../migrations';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DatabaseClosedError, InvalidDatabaseUrlError, NestedTransactionError, isUniqueViolation } from '../../src/persistence/errors';
import { openDatabase, parseDatabaseUrl, runPendingMigrations } from '../../src/persistence/database';
import { InboundMessageEntity } from '../../src/persistence/entities/inbound-message.entity';
import { VoucherEntity } from '../../src/persistence/entities/voucher.entity';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../support/database';

const TABLES = [
  'orders', 'vouchers', 'write_offs', 'refund_requests', 'inbound_messages', 'outbox_events', 'work_items', 'operator_exceptions',
];

for (const kind of DATABASE_KINDS) {
  describe(`database on ${kind}`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await openTestDatabase(kind);
    });
    after(async () => {
      await t?.drop();
    });

    test('migrations create every table on an empty database', async () => {
      const qr = t.db.dataSource.createQueryRunner();
      try {
        for (const table of TABLES) assert.equal(await qr.hasTable(table), true, `table ${table}`);
        const orders = await qr.getTable('orders');
        const unique = orders?.indices.find((i) => i.name === 'uq_orders_taobao_order_id');
        assert.equal(unique?.isUnique, true);
        assert.deepEqual(
          orders?.indices.find((i) => i.name === 'idx_orders_created_at_id')?.columnNames,
          ['created_at', 'id'],
        );
      } finally {
        await qr.release();
      }
      const applied = await t.db.dataSource.query('SELECT name FROM migrations');
      assert.deepEqual(applied.map((r: { name: string }) => r.name), MIGRATIONS.map((m) => m.name));
    });

    test('the entities match the migrated schema exactly (no pending schema change)', async () => {
      const diff = await t.db.dataSource.driver.createSchemaBuilder().log();
      assert.deepEqual(diff.upQueries.map((q) => q.query), []);
    });

    test('re-opening is idempotent: no migration runs twice', async () => {
      const again = await t.reopen();
      try {
        assert.deepEqual(await runPendingMigrations(again), []);
        const applied = await again.dataSource.query('SELECT name FROM migrations');
        assert.equal(applied.length, MIGRATIONS.length);
      } finally {
        await again.close();
      }
    });

    test('kind and ping', async () => {
      assert.equal(t.db.kind, kind);
      assert.equal(await t.db.ping(), true);
    });

    test('text keeps Chinese and 4-byte characters, bigint comes back as a number', async () => {
      const body = '{"code":200,"msg":"银子岩门票 🎫"}';
      const receivedAt = 1_763_900_000_123;
      await t.db.transaction((em) =>
        em.insert(InboundMessageEntity, { source: 'taobao', dedupKey: 'utf8-check', method: 'send', receivedAt, responseStatus: 200, responseBody: body }),
      );
      const row = await t.db.read((em) => em.findOneByOrFail(InboundMessageEntity, { source: 'taobao', dedupKey: 'utf8-check' }));
      assert.equal(row.responseBody, body);
      assert.equal(row.receivedAt, receivedAt);
      assert.equal(typeof row.receivedAt, 'number');
    });

    test('keys compare exactly: codes differing only in case are distinct', async () => {
      await t.db.transaction((em) =>
        em.insert(InboundMessageEntity, [
          { source: 'lianhe', dedupKey: 'AbC', method: 'snNotify', receivedAt: 1 },
          { source: 'lianhe', dedupKey: 'abc', method: 'snNotify', receivedAt: 1 },
        ]),
      );
      const n = await t.db.read((em) => em.countBy(InboundMessageEntity, { source: 'lianhe' }));
      assert.equal(n, 2);
    });

    test('a duplicate (source, dedup_key) is a unique violation on this driver', async () => {
      const row = { source: 'zhiyoubao', dedupKey: 'dup-1', method: 'check', receivedAt: 5 };
      await t.db.transaction((em) => em.insert(InboundMessageEntity, row));
      const err = await t.db.transaction((em) => em.insert(InboundMessageEntity, row)).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err, 'second insert must fail');
      assert.equal(isUniqueViolation(err), true);
      assert.equal(isUniqueViolation(new Error('other')), false);
    });

    test('50 parallel transactions each inserting a row all commit', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          t.db.transaction(async (em) => {
            await em.insert(InboundMessageEntity, { source: 'parallel', dedupKey: `k-${i}`, method: 'send', receivedAt: i });
            // Yield mid-transaction so, without serialisation, transactions would interleave on one connection.
            await new Promise((r) => setImmediate(r));
            return em.countBy(InboundMessageEntity, { source: 'parallel', dedupKey: `k-${i}` });
          }),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed, []);
      assert.ok(results.every((r) => r.status === 'fulfilled' && r.value === 1));
      assert.equal(await t.db.read((em) => em.countBy(InboundMessageEntity, { source: 'parallel' })), 50);
    });

    test('a failed transaction rolls back and does not block the next ones', async () => {
      await assert.rejects(
        t.db.transaction(async (em) => {
          await em.insert(InboundMessageEntity, { source: 'rollback', dedupKey: 'x', method: 'send', receivedAt: 1 });
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await t.db.read((em) => em.countBy(InboundMessageEntity, { source: 'rollback' })), 0);
      await t.db.transaction((em) => em.insert(InboundMessageEntity, { source: 'rollback', dedupKey: 'y', method: 'send', receivedAt: 1 }));
      assert.equal(await t.db.read((em) => em.countBy(InboundMessageEntity, { source: 'rollback' })), 1);
    });

    test('a transaction inside a transaction is refused instead of deadlocking', async () => {
      await assert.rejects(
        t.db.transaction(async () => t.db.transaction(async () => 1)),
        NestedTransactionError,
      );
      await assert.rejects(t.db.transaction(async () => t.db.read(async () => 1)), NestedTransactionError);
      // Work started from inside but run after the outer transaction ended is not nesting.
      let later: Promise<number> | undefined;
      await t.db.transaction(async () => {
        later = new Promise<void>((r) => setTimeout(r, 20)).then(() => t.db.transaction(async () => 7));
      });
      assert.equal(await later, 7);
    });

    for (const k of [1, 2]) {
      test(`conditional decrement by ${k}: 20 concurrent attempts on a 3-unit voucher, affected rows exact`, async () => {
        const inserted = await t.db.transaction((em) =>
          em.insert(VoucherEntity, { orderId: `o_dec_${k}`, code: `CODE${k}`, qrPayload: null, total: 3, remaining: 3, status: 'active', createdAt: 1 }),
        );
        const voucherId = inserted.identifiers[0]?.id as number;
        assert.equal(typeof voucherId, 'number');
        const affected = await Promise.all(
          Array.from({ length: 20 }, () =>
            t.db.transaction(async (em) => {
              const r = await em
                .createQueryBuilder()
                .update(VoucherEntity)
                .set({ remaining: () => `remaining - ${k}` })
                .where('id = :id AND remaining >= :k', { id: voucherId, k })
                .execute();
              return r.affected;
            }),
          ),
        );
        const expectedWins = Math.floor(3 / k);
        assert.equal(affected.filter((a) => a === 1).length, expectedWins, `affected: ${affected.join(',')}`);
        assert.equal(affected.filter((a) => a === 0).length, 20 - expectedWins);
        const v = await t.db.read((em) => em.findOneByOrFail(VoucherEntity, { id: voucherId }));
        assert.equal(v.remaining, 3 - expectedWins * k);
      });
    }

    if (kind === 'mysql') {
      test('every transaction runs at READ COMMITTED: it sees rows committed after it began', async () => {
        const source = 'isolation';
        let release!: () => void;
        const otherCommitted = new Promise<void>((r) => (release = r));
        const seen = t.db.transaction(async (em) => {
          const before = await em.countBy(InboundMessageEntity, { source });
          // Under REPEATABLE READ this transaction's snapshot would hide the other's commit.
          await otherCommitted;
          const afterCommit = await em.countBy(InboundMessageEntity, { source });
          const [trx] = await em.query(
            'SELECT trx_isolation_level AS level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()',
          );
          return { before, afterCommit, level: trx?.level };
        });
        await new Promise((r) => setTimeout(r, 50));
        await t.db.transaction((em) => em.insert(InboundMessageEntity, { source, dedupKey: 'rc', method: 'send', receivedAt: 1 }));
        release();
        assert.deepEqual(await seen, { before: 0, afterCommit: 1, level: 'READ COMMITTED' });
      });
    } else {
      test('SQLite runs in WAL mode with synchronous=FULL', async () => {
        const [mode] = await t.db.dataSource.query('PRAGMA journal_mode');
        const [sync] = await t.db.dataSource.query('PRAGMA synchronous');
        assert.equal(mode.journal_mode, 'wal');
        assert.equal(sync.synchronous, 2);
      });
    }

    test('after close: ping is false and transactions are refused', async () => {
      const other = await t.reopen();
      assert.equal(await other.ping(), true);
      await other.close();
      await other.close(); // twice is harmless
      assert.equal(await other.ping(), false);
      await assert.rejects(other.transaction(async () => 1), DatabaseClosedError);
    });
  });
}

describe('test support', () => {
  test('openTestDatabase("mysql") without TEST_MYSQL_URL fails loudly instead of skipping', async () => {
    const saved = process.env.TEST_MYSQL_URL;
    delete process.env.TEST_MYSQL_URL;
    try {
      await assert.rejects(openTestDatabase('mysql'), /TEST_MYSQL_URL is not set/);
    } finally {
      if (saved !== undefined) process.env.TEST_MYSQL_URL = saved;
    }
  });
});

describe('DATABASE_URL', () => {
  test('an unsupported scheme is a clear error naming DATABASE_URL, without the password', async () => {
    await assert.rejects(openDatabase({ url: 'postgres://app:s3cretPw@127.0.0.1:5432/tg', dataDir: '/nonexistent' }), (err: unknown) => {
      assert.ok(err instanceof InvalidDatabaseUrlError);
      assert.match(err.message, /DATABASE_URL/);
      assert.match(err.message, /postgres/);
      assert.doesNotMatch(err.message, /s3cretPw/);
      return true;
    });
  });

  test('not a URL, no host, no database, no user: each rejected', () => {
    for (const bad of ['not a url', 'mysql:///tg', 'mysql://root@127.0.0.1:3306/', 'mysql://127.0.0.1:3306/tg', 'mysql://u@h/a/b']) {
      assert.throws(() => parseDatabaseUrl(bad), InvalidDatabaseUrlError, bad);
    }
  });

  test('mysql:// and mariadb:// parse, with an encoded password and default port', () => {
    assert.deepEqual(parseDatabaseUrl('mariadb://gw:p%40ss%3Aword@db.internal/ticket_gateway'), {
      host: 'db.internal',
      port: 3306,
      username: 'gw',
      password: 'p@ss:word',
      database: 'ticket_gateway',
    });
    assert.deepEqual(parseDatabaseUrl('mysql://root@127.0.0.1:3391/tg'), {
      host: '127.0.0.1',
      port: 3391,
      username: 'root',
      password: undefined,
      database: 'tg',
    });
  });

  test('an unreachable server fails to open with a message naming where, not hanging', async () => {
    const started = Date.now();
    await assert.rejects(
      openDatabase({ url: 'mysql://gw:topsecret@127.0.0.1:1/tg', dataDir: '/nonexistent' }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /mysql:\/\/gw@127\.0\.0\.1:1\/tg/);
        assert.doesNotMatch(err.message, /topsecret/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 10_000);
  });
});
