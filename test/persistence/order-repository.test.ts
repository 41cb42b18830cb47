import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OrderState, type Ledger } from '../../src/domain/model';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { VoucherEntity } from '../../src/persistence/entities/voucher.entity';
import {
  DEFAULT_PAGE_SIZE,
  DuplicateOrderError,
  InvalidPageTokenError,
  MAX_PAGE_SIZE,
  OrderRepository,
  clampPageSize,
  encodePageToken,
  type NewOrder,
  type OrderListFilter,
  type OrderView,
} from '../../src/persistence/order-repository';
import { PersonalDataProtector } from '../../src/security/personal-data-protector';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../support/database';

const protector = new PersonalDataProtector('test-personal-data-key-0123456789abcdef');
const T0 = Date.UTC(2026, 0, 10, 2, 0, 0);
const MOBILE = '13912345678';
const ID_CARD = '110101199003071234';

function ledgerOf(purchased: number, consumed = 0): Ledger {
  return { purchased, available: purchased - consumed, consumed, refundPending: 0, refunded: 0, expired: 0 };
}

function sampleOrder(overrides: Partial<NewOrder> = {}): NewOrder {
  const mobile = protector.protectMobile(MOBILE);
  const idCard = protector.protectIdCard(ID_CARD);
  return {
    taobaoOrderId: '1525658026040792001',
    token: 'd3077e5d86c75a2142f87161a4b4c3ea',
    numIid: '522071639483',
    outerIid: 'YZY-001',
    subOuterIid: 'YZY-001-ADULT',
    itemTitle: '银子岩门票',
    skuProperties: '门票种类:成人票;门票类型:电子票',
    sellerId: '92333234',
    sellerNick: 'haaron_john',
    unitPriceFen: 8_800,
    totalFeeFen: 17_600,
    sendType: 2,
    consumeType: 2,
    noticeType: 0,
    mobileMasked: mobile.masked,
    mobileHash: mobile.hash,
    mobileCipher: mobile.cipher,
    idCardMasked: idCard.masked,
    idCardHash: idCard.hash,
    idCardCipher: idCard.cipher,
    visitorName: '张三',
    validStart: Date.UTC(2026, 0, 10, -8, 0, 0),
    validEnd: Date.UTC(2026, 0, 10, 15, 59, 59),
    supplier: 'zhiyoubao',
    supplierOrderId: 'ZYB-778899',
    supplierSubOrderIds: ['ZYB-778899-1', 'ZYB-778899-2'],
    state: OrderState.Issued,
    ledger: ledgerOf(2),
    createdAt: T0,
    ...overrides,
  };
}

for (const kind of DATABASE_KINDS) {
  describe(`OrderRepository on ${kind}`, () => {
    let t: TestDatabase;
    let repo: OrderRepository;
    before(async () => {
      t = await openTestDatabase(kind);
      repo = new OrderRepository(t.db);
    });
    after(async () => {
      await t?.drop();
    });

    test('insert + findById round trip: fields, ledger, vouchers, masks; no hash or cipher in the view', async () => {
      const input = sampleOrder();
      const inserted = await repo.insert(input, [
        { code: '81234567', qrPayload: 'https://qr.example/81234567', total: 2 },
        { code: '81234568', total: 1, remaining: 0 },
      ]);
      assert.match(inserted.id, /^o_[0-9A-Z]{26}$/);
      const found = await repo.findById(inserted.id);
      assert.ok(found);
      assert.deepEqual(found, inserted);

      assert.equal(found.taobaoOrderId, input.taobaoOrderId);
      assert.equal(found.itemTitle, '银子岩门票');
      assert.equal(found.skuProperties, input.skuProperties);
      assert.equal(found.unitPriceFen, 8_800);
      assert.equal(found.totalFeeFen, 17_600);
      assert.equal(found.validStart, input.validStart);
      assert.equal(found.validEnd, input.validEnd);
      assert.equal(found.state, OrderState.Issued);
      assert.deepEqual(found.ledger, ledgerOf(2));
      assert.deepEqual(found.supplierSubOrderIds, ['ZYB-778899-1', 'ZYB-778899-2']);
      assert.equal(found.mobileMasked, '139****5678');
      assert.equal(found.idCardMasked, '110***********1234');
      assert.equal(found.version, 1);
      assert.equal(found.createdAt, T0);
      assert.equal(found.updatedAt, T0);
      assert.deepEqual(
        found.vouchers.map(({ code, qrPayload, total, remaining, status }) => ({ code, qrPayload, total, remaining, status })),
        [
          { code: '81234567', qrPayload: 'https://qr.example/81234567', total: 2, remaining: 2, status: 'active' },
          { code: '81234568', qrPayload: null, total: 1, remaining: 0, status: 'active' },
        ],
      );

      for (const key of Object.keys(found)) assert.doesNotMatch(key, /cipher|hash/i, `view field ${key}`);
      const text = JSON.stringify(found);
      assert.ok(!text.includes(MOBILE) && !text.includes(ID_CARD), 'no clear personal data');
      assert.ok(!text.includes(input.mobileCipher!) && !text.includes(input.idCardCipher!), 'no cipher text');
      assert.ok(!text.includes(input.mobileHash!), 'no lookup hash');

      // What is stored can be matched and given back to the supplier.
      const row = await t.db.read((em) => em.findOneByOrFail(OrderEntity, { id: found.id }));
      assert.equal(row.mobileHash, protector.hash(MOBILE));
      assert.equal(protector.decrypt(row.mobileCipher!), MOBILE);
      assert.equal(protector.decrypt(row.idCardCipher!), ID_CARD);

      assert.deepEqual(await repo.findByTaobaoOrderId(input.taobaoOrderId), found);
      assert.equal(await repo.findById('o_missing'), undefined);
      assert.equal(await repo.findByTaobaoOrderId('0'), undefined);
    });

    test('a type=1 order with no clear mobile and no vouchers stores nulls', async () => {
      const v = await repo.insert(
        sampleOrder({
          taobaoOrderId: '1525658026040792002',
          noticeType: 1,
          mobileMasked: '131****5678',
          mobileHash: null,
          mobileCipher: null,
          idCardMasked: null,
          idCardHash: null,
          idCardCipher: null,
          supplier: null,
          supplierOrderId: null,
          supplierSubOrderIds: [],
          state: OrderState.Received,
        }),
      );
      const found = await repo.findById(v.id);
      assert.equal(found?.noticeType, 1);
      assert.equal(found?.mobileMasked, '131****5678');
      assert.equal(found?.idCardMasked, null);
      assert.equal(found?.supplier, null);
      assert.deepEqual(found?.supplierSubOrderIds, []);
      assert.deepEqual(found?.vouchers, []);
    });

    test('a second order with the same Taobao order id is rejected and nothing of it is stored', async () => {
      const first = await repo.insert(sampleOrder({ taobaoOrderId: '1525658026040792003' }), [{ code: 'DUP-A', total: 1 }]);
      await assert.rejects(
        repo.insert(sampleOrder({ taobaoOrderId: '1525658026040792003', itemTitle: 'other' }), [{ code: 'DUP-B', total: 1 }]),
        (err: unknown) => err instanceof DuplicateOrderError && err.taobaoOrderId === '1525658026040792003',
      );
      const again = await repo.findByTaobaoOrderId('1525658026040792003');
      assert.deepEqual(again, first);
      const orphan = await t.db.read((em) => em.countBy(VoucherEntity, { code: 'DUP-B' }));
      assert.equal(orphan, 0);
    });

    test('an order whose ledger does not add up is refused before it is stored', async () => {
      await assert.rejects(
        repo.insert(sampleOrder({ taobaoOrderId: '1525658026040792004', ledger: { ...ledgerOf(3), consumed: 1 } })),
      );
      assert.equal(await repo.findByTaobaoOrderId('1525658026040792004'), undefined);
    });

    test('insert joins the caller\'s transaction when given one (rolled back together)', async () => {
      await assert.rejects(
        t.db.transaction(async (em) => {
          await repo.insert(sampleOrder({ taobaoOrderId: '1525658026040792005' }), [{ code: 'TX-1', total: 1 }], em);
          assert.ok(await repo.findByTaobaoOrderId('1525658026040792005', em), 'visible inside the transaction');
          throw new Error('caller fails after the insert');
        }),
        /caller fails/,
      );
      assert.equal(await repo.findByTaobaoOrderId('1525658026040792005'), undefined);
    });

    describe('list', () => {
      const SUPPLIERS = ['zhiyoubao', 'lianhe', null] as const;
      const STATES = [OrderState.Issued, OrderState.Consumed, OrderState.Refunded, OrderState.Received];
      const listed: OrderView[] = [];
      let lt: TestDatabase;
      let lrepo: OrderRepository;

      before(async () => {
        lt = await openTestDatabase(kind);
        lrepo = new OrderRepository(lt.db);
        // 64 orders; several share a created_at so the id must break ties.
        for (let i = 0; i < 64; i++) {
          listed.push(
            await lrepo.insert(
              sampleOrder({
                taobaoOrderId: `20000000000000${String(i).padStart(5, '0')}`,
                createdAt: T0 + Math.floor(i / 3) * 1000,
                state: STATES[i % STATES.length]!,
                supplier: SUPPLIERS[i % SUPPLIERS.length]!,
                outerIid: `ITEM-${i % 5}`,
                subOuterIid: i % 2 === 0 ? `SKU-${i % 4}` : null,
              }),
              [{ code: `L${i}`, total: 1 }],
            ),
          );
        }
      });
      after(async () => {
        await lt?.drop();
      });

      function expected(filter: OrderListFilter): string[] {
        return listed
          .filter((o) => filter.state === undefined || o.state === filter.state)
          .filter((o) => filter.supplier === undefined || o.supplier === filter.supplier)
          .filter((o) => filter.product === undefined || o.outerIid === filter.product || o.subOuterIid === filter.product)
          .filter((o) => filter.taobaoOrderId === undefined || o.taobaoOrderId === filter.taobaoOrderId)
          .filter((o) => filter.createdFrom === undefined || o.createdAt >= filter.createdFrom)
          .filter((o) => filter.createdTo === undefined || o.createdAt < filter.createdTo)
          .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
          .map((o) => o.id);
      }

      async function walk(filter: OrderListFilter, pageSize: number): Promise<{ ids: string[]; pages: number }> {
        const ids: string[] = [];
        let token: string | undefined;
        let pages = 0;
        for (let guard = 0; guard < 200; guard++) {
          const page = await lrepo.list(filter, pageSize, token);
          pages++;
          assert.ok(page.orders.length <= pageSize);
          ids.push(...page.orders.map((o) => o.id));
          token = page.nextPageToken;
          if (token === undefined) return { ids, pages };
          assert.equal(page.orders.length, pageSize, 'only the last page may be short');
        }
        throw new Error('pagination did not end');
      }

      test('newest first; the default page size is 50', async () => {
        const page = await lrepo.list({});
        assert.equal(page.orders.length, DEFAULT_PAGE_SIZE);
        assert.deepEqual(page.orders.map((o) => o.id), expected({}).slice(0, DEFAULT_PAGE_SIZE));
        assert.ok(page.nextPageToken);
        // Each listed order carries its vouchers.
        assert.deepEqual(page.orders[0]!.vouchers.map((v) => v.code), [`L${listed.findIndex((o) => o.id === page.orders[0]!.id)}`]);
      });

      test('pagination walks every row exactly once, for several page sizes', async () => {
        for (const size of [1, 7, 16, 63, 64, 65]) {
          const { ids, pages } = await walk({}, size);
          assert.equal(new Set(ids).size, ids.length, `no duplicates at size ${size}`);
          assert.deepEqual(ids, expected({}), `size ${size}`);
          assert.equal(pages, Math.max(1, Math.ceil(64 / size)), `pages at size ${size}`);
        }
      });

      test('each filter works alone and combined, across pages', async () => {
        const filters: OrderListFilter[] = [
          { state: OrderState.Consumed },
          { supplier: 'lianhe' },
          { product: 'ITEM-3' },
          { product: 'SKU-2' },
          { taobaoOrderId: '2000000000000000017' },
          { createdFrom: T0 + 5_000 },
          { createdTo: T0 + 5_000 },
          { createdFrom: T0 + 3_000, createdTo: T0 + 9_000 },
          { state: OrderState.Issued, supplier: 'zhiyoubao' },
          { supplier: 'zhiyoubao', product: 'ITEM-1', createdFrom: T0 + 2_000 },
          { state: OrderState.Closed },
        ];
        for (const f of filters) {
          const want = expected(f);
          if (f.state !== OrderState.Closed) assert.ok(want.length > 0, `fixture covers ${JSON.stringify(f)}`);
          const { ids } = await walk(f, 4);
          assert.deepEqual(ids, want, JSON.stringify(f));
        }
      });

      test('orders inserted while paging do not disturb the walk of older ones', async () => {
        const first = await lrepo.list({}, 10);
        const newer = await lrepo.insert(sampleOrder({ taobaoOrderId: '2999999999999999999', createdAt: T0 + 1_000_000 }));
        const rest: string[] = [];
        let token = first.nextPageToken;
        for (let guard = 0; token && guard < 100; guard++) {
          const page = await lrepo.list({}, 10, token);
          rest.push(...page.orders.map((o) => o.id));
          token = page.nextPageToken;
        }
        assert.deepEqual([...first.orders.map((o) => o.id), ...rest], expected({}));
        assert.ok(!rest.includes(newer.id));
        listed.push(newer);
      });

      test('a malformed or altered page token is an InvalidPageTokenError', async () => {
        const good = (await lrepo.list({}, 5)).nextPageToken!;
        const bad = [
          'not a token!',
          'AAAA',
          Buffer.from('{"createdAt":1,"id":"o_x"}').toString('base64url'),
          Buffer.from(JSON.stringify([2, 1, 'o_x'])).toString('base64url'),
          Buffer.from(JSON.stringify([1, -5, 'o_x'])).toString('base64url'),
          Buffer.from(JSON.stringify([1, 1.5, 'o_x'])).toString('base64url'),
          Buffer.from(JSON.stringify([1, 1, ''])).toString('base64url'),
          good.slice(0, -3),
          'x'.repeat(300),
        ];
        for (const token of bad) {
          await assert.rejects(lrepo.list({}, 5, token), InvalidPageTokenError, token);
        }
        // A well-formed token of ours still works.
        assert.equal((await lrepo.list({}, 5, encodePageToken(T0 + 1_000, 'o_~'))).orders.length, 5);
      });

      test('page size: default for 0 or less, clamped to 500', () => {
        assert.equal(clampPageSize(undefined), DEFAULT_PAGE_SIZE);
        assert.equal(clampPageSize(0), DEFAULT_PAGE_SIZE);
        assert.equal(clampPageSize(-3), DEFAULT_PAGE_SIZE);
        assert.equal(clampPageSize(7), 7);
        assert.equal(clampPageSize(500), 500);
        assert.equal(clampPageSize(10_000), MAX_PAGE_SIZE);
      });

      test('a page size above 500 returns at most 500 rows', async () => {
        await lt.db.transaction(async (em) => {
          const rows = Array.from({ length: 460 }, (_, i) => ({
            id: `o_bulk_${String(i).padStart(4, '0')}`,
            taobaoOrderId: `30000000000000${String(i).padStart(5, '0')}`,
            token: 't',
            noticeType: 0,
            unitPriceFen: 1,
            totalFeeFen: 1,
            validStart: 0,
            validEnd: 1,
            state: OrderState.Issued,
            purchased: 1,
            available: 1,
            consumed: 0,
            refundPending: 0,
            refunded: 0,
            expired: 0,
            version: 1,
            createdAt: T0 - 10_000,
            updatedAt: T0 - 10_000,
          }));
          for (let i = 0; i < rows.length; i += 100) await em.insert(OrderEntity, rows.slice(i, i + 100));
        });
        const page = await lrepo.list({}, 10_000);
        assert.equal(page.orders.length, MAX_PAGE_SIZE);
        assert.ok(page.nextPageToken);
        const rest = await lrepo.list({}, 10_000, page.nextPageToken);
        assert.equal(rest.orders.length, 64 + 1 + 460 - MAX_PAGE_SIZE);
        assert.equal(rest.nextPageToken, undefined);
      });
    });
  });
}
