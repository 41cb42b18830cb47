/**
 * DbProductDirectory on SQLite and MariaDB: CRUD, SKU precedence, cache invalidation, catalog file loading.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../src/config';
import { CheckMethod, type Clock } from '../../../src/domain/model';
import { ProductMappingEntity } from '../../../src/persistence/entities/product-mapping.entity';
import type { ProductMapping } from '../../../src/suppliers/product-catalog';
import {
  DbProductDirectory,
  InvalidMappingPageTokenError,
  InvalidProductMappingError,
  readProductCatalogFile,
  UnknownSupplierInstanceError,
} from '../../../src/suppliers/product-directory';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../../support/database';

const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);
const SUPPLIERS = ['zyb-huangshan', 'lianhe-main'];

function mapping(over: Partial<ProductMapping> = {}): ProductMapping {
  return {
    outerIid: 'HS-ADULT',
    supplierInstance: 'zyb-huangshan',
    supplierTicketType: 'PST20170001',
    scenicSpotCode: 'HS-GATE-SOUTH',
    checkMethods: [CheckMethod.Code, CheckMethod.Qr],
    realNameRequired: false,
    validity: { kind: 'days_from_visit', days: 1 },
    expiryRefund: { allowed: true, ratioBasisPoints: 8000 },
    ...over,
  };
}

function makeClock(start = T0): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

async function withDirectory(kind: 'sqlite' | 'mysql', fn: (dir: DbProductDirectory, tdb: TestDatabase, clock: ReturnType<typeof makeClock>) => Promise<void>, cacheTtlMs = 30_000) {
  const tdb = await openTestDatabase(kind);
  const clock = makeClock();
  try {
    const dir = new DbProductDirectory(tdb.db, {
      clock,
      isKnownSupplier: (c) => SUPPLIERS.includes(c),
      knownSuppliers: () => SUPPLIERS,
      cacheTtlMs,
    });
    await fn(dir, tdb, clock);
  } finally {
    await tdb.drop();
  }
}

async function rowCount(tdb: TestDatabase): Promise<number> {
  return tdb.db.read((em) => em.count(ProductMappingEntity));
}

for (const kind of DATABASE_KINDS) {
  describe(`product directory on ${kind}`, { timeout: 90_000 }, () => {
    it('creates, reads back, replaces and deletes a mapping; an unmapped product resolves to undefined', async () => {
      await withDirectory(kind, async (dir, tdb, clock) => {
        assert.equal(await dir.resolve('HS-ADULT', null), undefined);
        assert.equal(await dir.resolve(null, null), undefined);

        const created = await dir.upsert(mapping({ validity: { kind: 'fixed', start: '2026-01-01', end: '2026-12-31' }, checkMethods: [CheckMethod.IdCard], realNameRequired: true }));
        assert.equal(created.created, true);
        assert.equal(created.mapping.createdAt, T0);
        const got = await dir.get('HS-ADULT');
        assert.ok(got);
        assert.deepEqual(got.validity, { kind: 'fixed', start: '2026-01-01', end: '2026-12-31' });
        assert.deepEqual(got.checkMethods, [CheckMethod.IdCard]);
        assert.equal(got.realNameRequired, true);
        assert.equal(got.subOuterIid, undefined);
        assert.deepEqual(got.expiryRefund, { allowed: true, ratioBasisPoints: 8000 });

        clock.advance(1000);
        const replaced = await dir.upsert(mapping({ supplierTicketType: 'PST20170002', expiryRefund: { allowed: false, ratioBasisPoints: 0 } }));
        assert.equal(replaced.created, false);
        const after = await dir.get('HS-ADULT');
        assert.equal(after?.supplierTicketType, 'PST20170002');
        assert.deepEqual(after?.validity, { kind: 'days_from_visit', days: 1 });
        assert.deepEqual(after?.expiryRefund, { allowed: false, ratioBasisPoints: 0 });
        assert.equal(after?.createdAt, T0);
        assert.equal(after?.updatedAt, T0 + 1000);
        assert.equal(await rowCount(tdb), 1);

        assert.equal(await dir.delete('HS-ADULT'), true);
        assert.equal(await dir.delete('HS-ADULT'), false);
        assert.equal(await dir.get('HS-ADULT'), undefined);
        assert.equal(await dir.resolve('HS-ADULT', null), undefined);
      });
    });

    it('resolves the SKU code over the item code, and the SKU code alone as a product code', async () => {
      await withDirectory(kind, async (dir) => {
        await dir.upsert(mapping({ outerIid: 'HS', supplierTicketType: 'ITEM' }));
        await dir.upsert(mapping({ outerIid: 'HS', subOuterIid: 'HS-WKND', supplierTicketType: 'SKU' }));
        await dir.upsert(mapping({ outerIid: 'HS-CHILD', supplierTicketType: 'CHILD', supplierInstance: 'lianhe-main' }));
        assert.equal((await dir.resolve('HS', 'HS-WKND'))?.supplierTicketType, 'SKU');
        assert.equal((await dir.resolve('HS', 'HS-OTHER'))?.supplierTicketType, 'ITEM');
        assert.equal((await dir.resolve('HS', null))?.supplierTicketType, 'ITEM');
        assert.equal((await dir.resolve('HS', 'HS-CHILD'))?.supplierTicketType, 'CHILD');
        assert.equal((await dir.resolve(null, 'HS-CHILD'))?.supplierInstance, 'lianhe-main');
        assert.equal(await dir.resolve('NOPE', 'NOPE-SKU'), undefined);
        // Exact get does not fall back.
        assert.equal(await dir.get('HS', 'HS-OTHER'), undefined);
      });
    });

    it('refuses a broken mapping or an unknown supplier instance and changes nothing', async () => {
      await withDirectory(kind, async (dir, tdb) => {
        await assert.rejects(dir.upsert(mapping({ supplierTicketType: '  ' })), (e: unknown) => {
          assert.ok(e instanceof InvalidProductMappingError);
          assert.equal(e.issues[0]?.field, 'ticket_type');
          return true;
        });
        await assert.rejects(dir.upsert(mapping({ checkMethods: [CheckMethod.IdCard], realNameRequired: false })), (e: unknown) => {
          assert.ok(e instanceof InvalidProductMappingError);
          assert.equal(e.issues[0]?.field, 'check_methods');
          return true;
        });
        await assert.rejects(dir.upsert(mapping({ validity: { kind: 'fixed', start: '2026-05-01', end: '2026-04-01' } })), (e: unknown) => {
          assert.ok(e instanceof InvalidProductMappingError);
          assert.equal(e.issues[0]?.field, 'validity.end');
          return true;
        });
        await assert.rejects(dir.upsert(mapping({ supplierInstance: 'zyb-nowhere' })), (e: unknown) => {
          assert.ok(e instanceof UnknownSupplierInstanceError);
          assert.match(e.message, /zyb-nowhere/);
          assert.match(e.message, /zyb-huangshan/);
          return true;
        });
        assert.equal(await rowCount(tdb), 0);
      });
    });

    it('lists in key order with page tokens and a supplier filter; refuses a forged token', async () => {
      await withDirectory(kind, async (dir) => {
        for (let i = 0; i < 5; i++) await dir.upsert(mapping({ outerIid: `P${i}`, supplierInstance: i % 2 ? 'lianhe-main' : 'zyb-huangshan' }));
        await dir.upsert(mapping({ outerIid: 'P1', subOuterIid: 'S1' }));
        const seen: string[] = [];
        let token: string | undefined;
        for (let guard = 0; guard < 10; guard++) {
          const page = await dir.list({ pageSize: 2, pageToken: token });
          assert.ok(page.mappings.length <= 2);
          seen.push(...page.mappings.map((m) => `${m.outerIid}/${m.subOuterIid ?? ''}`));
          token = page.nextPageToken;
          if (!token) break;
        }
        assert.deepEqual(seen, ['P0/', 'P1/', 'P1/S1', 'P2/', 'P3/', 'P4/']);
        const lianhe = await dir.list({ supplierInstance: 'lianhe-main' });
        assert.deepEqual(lianhe.mappings.map((m) => m.outerIid), ['P1', 'P3']);
        assert.equal(lianhe.nextPageToken, undefined);
        await assert.rejects(dir.list({ pageToken: 'not-a-token' }), InvalidMappingPageTokenError);
      });
    });

    it('serves resolve from a snapshot: dropped on changes made here, refreshed after the TTL for changes made elsewhere', async () => {
      await withDirectory(
        kind,
        async (dir, tdb, clock) => {
          await dir.upsert(mapping());
          assert.equal((await dir.resolve('HS-ADULT', null))?.supplierTicketType, 'PST20170001');
          // Another replica changes the row behind this one's back.
          await tdb.db.transaction((em) => em.update(ProductMappingEntity, { outerIid: 'HS-ADULT', subOuterIid: '' }, { supplierTicketType: 'ELSEWHERE' }));
          assert.equal((await dir.resolve('HS-ADULT', null))?.supplierTicketType, 'PST20170001', 'snapshot still fresh');
          clock.advance(10_001);
          assert.equal((await dir.resolve('HS-ADULT', null))?.supplierTicketType, 'ELSEWHERE', 'snapshot expired');
          // A change made through this directory is visible at once.
          await dir.upsert(mapping({ supplierTicketType: 'HERE' }));
          assert.equal((await dir.resolve('HS-ADULT', null))?.supplierTicketType, 'HERE');
          await dir.delete('HS-ADULT');
          assert.equal(await dir.resolve('HS-ADULT', null), undefined);
        },
        10_000,
      );
    });

    it('loads a catalog file all-or-nothing: upserts, counts, keeps operator-added rows, and refuses an unknown supplier naming the entry', async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'tg-catalog-'));
      try {
        await withDirectory(kind, async (dir, tdb) => {
          await dir.upsert(mapping({ outerIid: 'ADMIN-ONLY' }));
          const file = join(tmp, 'catalog.yaml');
          writeFileSync(
            file,
            [
              'products:',
              '  - outer_iid: HS-ADULT',
              '    supplier: zyb-huangshan',
              '    ticket_type: PST20170001',
              '    scenic_spot: HS-GATE-SOUTH',
              '    check_methods: [CODE, QR]',
              '    real_name_required: false',
              '    validity: { kind: days_from_visit, days: 1 }',
              '    expiry_refund: { allowed: true, ratio_bp: 8000 }',
              '  - outer_iid: HS-ADULT',
              '    sub_outer_iid: HS-ADULT-RN',
              '    supplier: lianhe-main',
              '    ticket_type: "9001"',
              '    scenic_spot: HS-GATE-NORTH',
              '    check_methods: [ID_CARD]',
              '    real_name_required: true',
              '    validity: { kind: fixed, start: 2026-01-01, end: 2026-12-31 }',
              '    expiry_refund: { allowed: false, ratio_bp: 0 }',
            ].join('\n'),
          );
          const first = await dir.loadCatalog(readProductCatalogFile(file));
          assert.deepEqual(first, { inserted: 2, updated: 0, unchanged: 0 });
          const again = await dir.loadCatalog(readProductCatalogFile(file));
          assert.deepEqual(again, { inserted: 0, updated: 0, unchanged: 2 });
          assert.equal((await dir.resolve('HS-ADULT', 'HS-ADULT-RN'))?.supplierTicketType, '9001');
          assert.equal(await rowCount(tdb), 3, 'the operator-added mapping is kept');

          const bad = readProductCatalogFile(file).products.map((p, i) => (i === 1 ? { ...p, supplierInstance: 'lianhe-gone', supplierTicketType: 'CHANGED' } : { ...p, supplierTicketType: 'CHANGED' }));
          await assert.rejects(dir.loadCatalog({ products: bad }), (e: unknown) => {
            assert.ok(e instanceof UnknownSupplierInstanceError);
            assert.match(e.message, /products\[1\] \(outer_iid=HS-ADULT sub_outer_iid=HS-ADULT-RN\)/);
            assert.match(e.message, /lianhe-gone/);
            return true;
          });
          assert.equal((await dir.get('HS-ADULT'))?.supplierTicketType, 'PST20170001', 'nothing of the refused file was written');
        });
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
}

describe('catalog file errors', () => {
  it('a bad entry stops start-up with a ConfigError naming the entry and field; an unreadable file names the key', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tg-catalog-'));
    try {
      const file = join(tmp, 'catalog.json');
      writeFileSync(
        file,
        JSON.stringify({
          products: [
            { outer_iid: 'OK', supplier: 'zyb-huangshan', ticket_type: 'T', scenic_spot: 'S', check_methods: ['CODE'], real_name_required: false, validity: { kind: 'days_from_visit', days: 1 }, expiry_refund: { allowed: false, ratio_bp: 0 } },
            { outer_iid: 'BAD', supplier: 'zyb-huangshan', ticket_type: 'T', scenic_spot: 'S', check_methods: ['CODE'], real_name_required: false, validity: { kind: 'days_from_visit', days: 1 }, expiry_refund: { allowed: true, ratio_bp: 12000 } },
          ],
        }),
      );
      assert.throws(() => readProductCatalogFile(file), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.key, 'PRODUCT_CATALOG_FILE');
        assert.match(e.message, /products\[1\] \(outer_iid=BAD\): expiry_refund\.ratio_bp/);
        assert.doesNotMatch(e.message, /outer_iid=OK/);
        return true;
      });
      assert.throws(() => readProductCatalogFile(join(tmp, 'missing.yaml')), (e: unknown) => e instanceof ConfigError && /PRODUCT_CATALOG_FILE cannot be read \(ENOENT\)/.test(e.message));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
