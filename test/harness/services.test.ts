import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Connection } from 'mysql2/promise';
import { findBinary, startKafkaMock, startMariaDb, testMysqlUrl } from '../support/services';

const ISOLATION_LEVELS = ['READ-UNCOMMITTED', 'READ-COMMITTED', 'REPEATABLE-READ', 'SERIALIZABLE'];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A killed child not yet reaped by its parent shows as a zombie: count that as gone.
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

describe('the MariaDB given by TEST_MYSQL_URL', () => {
  const schema = `harness_${randomBytes(4).toString('hex')}`;
  let a: Connection;
  let b: Connection;

  before(async () => {
    const url = testMysqlUrl();
    a = await createConnection(url);
    b = await createConnection(url);
    await a.query(`CREATE DATABASE ${schema} CHARACTER SET utf8mb4`);
    await a.query(`CREATE TABLE ${schema}.stock (id INT PRIMARY KEY, remaining INT NOT NULL) ENGINE=InnoDB`);
    await a.query(`INSERT INTO ${schema}.stock VALUES (1, 10), (2, 20), (3, 30)`);
  });

  after(async () => {
    await a?.query(`DROP DATABASE IF EXISTS ${schema}`);
    await a?.end();
    await b?.end();
  });

  it('answers SELECT 1', async () => {
    const [rows] = await a.query('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
  });

  it('reports @@tx_isolation and switches a session to READ-COMMITTED', async () => {
    const [[initial]] = (await a.query('SELECT @@tx_isolation AS level')) as unknown as [[{ level: string }]];
    assert.ok(ISOLATION_LEVELS.includes(initial.level), `unexpected @@tx_isolation ${initial.level}`);
    await a.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    const [[now]] = (await a.query('SELECT @@tx_isolation AS level')) as unknown as [[{ level: string }]];
    assert.equal(now.level, 'READ-COMMITTED');
  });

  it('behaves as READ COMMITTED: a second read inside one transaction sees a concurrent commit', async () => {
    const read = async () => {
      const [rows] = await a.query(`SELECT remaining FROM ${schema}.stock WHERE id = 1`);
      return (rows as Array<{ remaining: number }>)[0]!.remaining;
    };
    // Under REPEATABLE READ the snapshot hides the other commit; under READ COMMITTED it shows. Check both,
    // so the server demonstrably honours the level rather than just echoing the variable.
    for (const [level, expectSeen] of [['REPEATABLE READ', false], ['READ COMMITTED', true]] as const) {
      await b.query(`UPDATE ${schema}.stock SET remaining = 10 WHERE id = 1`);
      await a.query(`SET SESSION TRANSACTION ISOLATION LEVEL ${level}`);
      await a.beginTransaction();
      try {
        assert.equal(await read(), 10);
        await b.query(`UPDATE ${schema}.stock SET remaining = 9 WHERE id = 1`);
        assert.equal(await read(), expectSeen ? 9 : 10, `second read under ${level}`);
      } finally {
        await a.rollback();
      }
    }
  });

  it('supports FOR UPDATE SKIP LOCKED, which the outbox relay claims rows with', async () => {
    await a.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    await b.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    await a.beginTransaction();
    await b.beginTransaction();
    try {
      const [claimedByA] = await a.query(`SELECT id FROM ${schema}.stock WHERE id = 1 FOR UPDATE`);
      assert.deepEqual(claimedByA, [{ id: 1 }]);
      const [claimedByB] = await b.query(`SELECT id FROM ${schema}.stock ORDER BY id FOR UPDATE SKIP LOCKED`);
      assert.deepEqual(claimedByB, [{ id: 2 }, { id: 3 }]);
    } finally {
      await a.rollback();
      await b.rollback();
    }
  });
});

/** Testers may bring their own services (DATABASE_URL, KAFKA_BROKERS) on a machine without these binaries. */
function missingBinaries(): string | false {
  try {
    ['mariadbd', 'mariadb-install-db', 'kcat'].forEach(findBinary);
    return false;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('service start-up and stop', () => {
  it('starts a MariaDB and a Kafka mock broker that accept connections, and stops them by pid without leftovers', { skip: missingBinaries() }, async () => {
    const [db, kafka] = await Promise.all([startMariaDb(), startKafkaMock()]);
    let stopped = false;
    try {
      assert.match(db.url, /^mysql:\/\/root@127\.0\.0\.1:\d+\/$/);
      const connection = await createConnection(db.url);
      try {
        const [rows] = await connection.query('SELECT @@port AS port, @@bind_address AS bind, @@sync_binlog AS syncBinlog');
        assert.deepEqual(rows, [{ port: db.port, bind: '127.0.0.1', syncBinlog: 1 }]);
      } finally {
        await connection.end();
      }
      assert.match(kafka.brokers, /^127\.0\.0\.1:\d+$/);
      assert.equal(await canConnect(kafka.port), true);
      assert.ok(isAlive(db.pid) && isAlive(kafka.pid));

      assert.ok(existsSync(db.dir) && existsSync(kafka.dir));
      await Promise.all([db.stop(), kafka.stop()]);
      stopped = true;
      assert.equal(isAlive(db.pid), false, 'mariadbd still running after stop()');
      assert.equal(isAlive(kafka.pid), false, 'kcat still running after stop()');
      assert.equal(await canConnect(db.port), false);
      assert.equal(await canConnect(kafka.port), false);
      assert.equal(existsSync(db.dir), false, 'MariaDB temp dir left behind');
      assert.equal(existsSync(kafka.dir), false, 'kcat temp dir left behind');
      // stop() is idempotent.
      await db.stop();
    } finally {
      if (!stopped) await Promise.allSettled([db.stop(), kafka.stop()]);
    }
  });
});
