/**
 * The gate device cache (DeviceRegistry): authentication reads a device once per `cacheMs`, not once per call; a
 * revocation or rotation made here takes effect at once, on another replica within `cacheMs`; a wrong secret is
 * refused whatever is cached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityManager } from 'typeorm';
import { CheckMethod } from '../../src/domain/model';
import { DeviceRegistry } from '../../src/gates/device-registry';
import type { Database } from '../../src/persistence/database';
import { openTestDatabase } from '../support/database';

/** The database, counting reads; while `held` is set, a read's answer waits for it (the read itself has run). */
function watchedReads(db: Database): { db: Database; reads(): number; hold(until: Promise<void>): void } {
  let reads = 0;
  let held: Promise<void> | undefined;
  const watched: Database = {
    dataSource: db.dataSource,
    kind: db.kind,
    transaction: (fn) => db.transaction(fn),
    atomically: (build) => db.atomically(build),
    async read<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
      reads++;
      const wait = held;
      const answer = await db.read(fn);
      if (wait) await wait;
      return answer;
    },
    ping: (timeoutMs) => db.ping(timeoutMs),
    close: () => db.close(),
  };
  return { db: watched, reads: () => reads, hold: (until) => (held = until) };
}

const DEVICE = { deviceCode: 'GATE-C', supplierEnterpriseCode: 'ENT1', scenicSpotCode: 'HS-SOUTH', allowedCheckMethods: [CheckMethod.Code], posid: 'POS_C' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('device cache: one read per device, changes made here at once, another replica within cacheMs, a wrong secret never', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  try {
    const watched = watchedReads(tdb.db);
    const registry = new DeviceRegistry(watched.db, { cacheMs: 60_000 });
    const { secret } = await registry.provision(DEVICE);

    const burst = await Promise.all(Array.from({ length: 20 }, () => registry.authenticate('GATE-C', secret)));
    assert.ok(burst.every((a) => a.ok));
    assert.equal(watched.reads(), 1, 'concurrent calls share one read');
    assert.equal((await registry.authenticate('GATE-C', secret)).ok, true);
    assert.deepEqual(await registry.authenticate('GATE-C', 'wrong-secret'), { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' });
    assert.deepEqual(await registry.authenticate('GATE-C', `${secret}x`), { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' });
    assert.equal(watched.reads(), 1, 'answered from the cache');

    const rotated = await registry.rotateSecret('GATE-C');
    assert.equal((await registry.authenticate('GATE-C', secret)).ok, false, 'the old secret is refused at once');
    assert.equal((await registry.authenticate('GATE-C', rotated.secret)).ok, true);

    // Another replica caches for 300 ms: it honours a revocation made elsewhere once its entry expires.
    const replica = new DeviceRegistry(tdb.db, { cacheMs: 300 });
    assert.equal((await replica.authenticate('GATE-C', rotated.secret)).ok, true);
    await registry.revoke('GATE-C');
    const here = await registry.authenticate('GATE-C', rotated.secret);
    assert.equal(here.ok === false && here.reason, 'DEVICE_REVOKED', 'revoked here: refused at once');
    assert.equal((await replica.authenticate('GATE-C', rotated.secret)).ok, true, 'the other replica still has its entry');
    await sleep(350);
    const there = await replica.authenticate('GATE-C', rotated.secret);
    assert.equal(there.ok === false && there.reason, 'DEVICE_REVOKED');
  } finally {
    await tdb.drop();
  }
});

test('a device read under way when the device is revoked here is not cached', { timeout: 60_000 }, async () => {
  const tdb = await openTestDatabase('sqlite');
  try {
    const watched = watchedReads(tdb.db);
    const registry = new DeviceRegistry(watched.db, { cacheMs: 60_000 });
    const { secret } = await registry.provision(DEVICE);

    let release!: () => void;
    watched.hold(new Promise<void>((r) => (release = r)));
    // Its read runs before the revocation (SQLite queues them in order); its answer arrives after.
    const underWay = registry.authenticate('GATE-C', secret);
    await registry.revoke('GATE-C');
    watched.hold(Promise.resolve());
    release();
    assert.equal((await underWay).ok, true, 'the call that came before the revocation');
    const after = await registry.authenticate('GATE-C', secret);
    assert.equal(after.ok === false && after.reason, 'DEVICE_REVOKED');
  } finally {
    await tdb.drop();
  }
});
