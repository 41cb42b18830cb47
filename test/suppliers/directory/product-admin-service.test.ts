/**
 * ProductAdminService through a real gRPC server on 127.0.0.1:0, on SQLite and MariaDB.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  CheckMethod,
  ProductAdminServiceClient,
  ProductAdminServiceService,
  type GetProductMappingResponse,
  type ListProductMappingsResponse,
  type ProductMapping,
  type UpsertProductMappingResponse,
} from '../../../src/gen/ticketgateway/admin/v1/product_admin';
import { GrpcServer } from '../../../src/grpc/grpc-server';
import { productAdminServiceHandlers } from '../../../src/grpc/product-admin-service';
import { createLogger } from '../../../src/observability/logger';
import { GatewayMetrics } from '../../../src/observability/metrics';
import { DbProductDirectory } from '../../../src/suppliers/product-directory';
import { DATABASE_KINDS, openTestDatabase } from '../../support/database';
import { unary } from '../../support/grpc-clients';

const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);
const SUPPLIERS = ['zyb-huangshan', 'lianhe-main'];

function protoMapping(over: Partial<ProductMapping> = {}): ProductMapping {
  return {
    outerIid: 'HS-ADULT',
    subOuterIid: '',
    supplierInstance: 'zyb-huangshan',
    supplierTicketType: 'PST20170001',
    scenicSpotCode: 'HS-GATE-SOUTH',
    checkMethods: [CheckMethod.CHECK_METHOD_CODE, CheckMethod.CHECK_METHOD_QR],
    realNameRequired: false,
    validity: { daysFromVisit: { days: 1 } },
    expiryRefund: { allowed: true, ratioBasisPoints: 8000 },
    createTime: undefined,
    updateTime: undefined,
    ...over,
  };
}

/** Asserts a call fails with INVALID_ARGUMENT naming `field` (message and error-field trailer). */
async function invalid(call: Promise<unknown>, field: string, message?: RegExp): Promise<void> {
  await assert.rejects(call, (e: ServiceError) => {
    assert.equal(e.code, status.INVALID_ARGUMENT, e.details);
    assert.ok(e.details.startsWith(`${field}: `), `"${e.details}" should name ${field}`);
    assert.equal(e.metadata.get('error-field')[0], field);
    if (message) assert.match(e.details, message);
    return true;
  });
}

for (const kind of DATABASE_KINDS) {
  describe(`ProductAdminService over gRPC on ${kind}`, { timeout: 90_000 }, () => {
    it('upserts, gets, lists, deletes; refuses bad input naming the field and unknown supplier instances', async () => {
      const tdb = await openTestDatabase(kind);
      const server = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
      const products = new DbProductDirectory(tdb.db, { clock: { now: () => T0 }, isKnownSupplier: (c) => SUPPLIERS.includes(c), knownSuppliers: () => SUPPLIERS });
      server.addService(ProductAdminServiceService, productAdminServiceHandlers({ products }));
      const port = await server.listen(0, '127.0.0.1');
      const client = new ProductAdminServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
      try {
        const upsert = (mapping: ProductMapping | undefined) => unary<unknown, UpsertProductMappingResponse>(client, 'upsertProductMapping', { mapping });

        const created = await upsert(protoMapping());
        assert.equal(created.created, true);
        assert.equal(created.mapping?.supplierTicketType, 'PST20170001');
        assert.equal(created.mapping?.createTime?.getTime(), T0);
        const sku = await upsert(protoMapping({ subOuterIid: 'HS-RN', supplierInstance: 'lianhe-main', supplierTicketType: '9001', checkMethods: [CheckMethod.CHECK_METHOD_ID_CARD], realNameRequired: true, validity: { fixed: { start: '2026-01-01', end: '2026-12-31' } }, expiryRefund: undefined }));
        assert.equal(sku.created, true);
        const replaced = await upsert(protoMapping({ scenicSpotCode: 'HS-GATE-EAST' }));
        assert.equal(replaced.created, false);

        const got = await unary<unknown, GetProductMappingResponse>(client, 'getProductMapping', { outerIid: 'HS-ADULT', subOuterIid: 'HS-RN' });
        assert.equal(got.mapping?.supplierInstance, 'lianhe-main');
        assert.deepEqual(got.mapping?.checkMethods, [CheckMethod.CHECK_METHOD_ID_CARD]);
        assert.deepEqual(got.mapping?.validity?.fixed, { start: '2026-01-01', end: '2026-12-31' });
        assert.equal(got.mapping?.validity?.daysFromVisit, undefined);
        assert.deepEqual(got.mapping?.expiryRefund, { allowed: false, ratioBasisPoints: 0 });
        const item = await unary<unknown, GetProductMappingResponse>(client, 'getProductMapping', { outerIid: 'HS-ADULT', subOuterIid: '' });
        assert.equal(item.mapping?.scenicSpotCode, 'HS-GATE-EAST');
        // The directory used by the order flow sees the admin change at once.
        assert.equal((await products.resolve('HS-ADULT', null))?.scenicSpotCode, 'HS-GATE-EAST');

        const page1 = await unary<unknown, ListProductMappingsResponse>(client, 'listProductMappings', { pageSize: 1, pageToken: '', supplierInstance: '' });
        assert.equal(page1.mappings.length, 1);
        assert.notEqual(page1.nextPageToken, '');
        const page2 = await unary<unknown, ListProductMappingsResponse>(client, 'listProductMappings', { pageSize: 1, pageToken: page1.nextPageToken, supplierInstance: '' });
        assert.deepEqual([...page1.mappings, ...page2.mappings].map((m) => m.subOuterIid), ['', 'HS-RN']);
        assert.equal(page2.nextPageToken, '');
        const lianhe = await unary<unknown, ListProductMappingsResponse>(client, 'listProductMappings', { pageSize: 0, pageToken: '', supplierInstance: 'lianhe-main' });
        assert.deepEqual(lianhe.mappings.map((m) => m.supplierTicketType), ['9001']);

        // Refusals: each names its field, and changes nothing.
        await invalid(upsert(undefined), 'mapping');
        await invalid(upsert(protoMapping({ outerIid: '' })), 'mapping.outer_iid');
        await invalid(upsert(protoMapping({ supplierTicketType: 'x'.repeat(65) })), 'mapping.supplier_ticket_type');
        await invalid(upsert(protoMapping({ scenicSpotCode: ' ' })), 'mapping.scenic_spot_code');
        await invalid(upsert(protoMapping({ checkMethods: [] })), 'mapping.check_methods');
        await invalid(upsert(protoMapping({ checkMethods: [CheckMethod.CHECK_METHOD_UNSPECIFIED] })), 'mapping.check_methods');
        await invalid(upsert(protoMapping({ checkMethods: [CheckMethod.CHECK_METHOD_ID_CARD] })), 'mapping.check_methods', /real_name_required/);
        await invalid(upsert(protoMapping({ validity: undefined })), 'mapping.validity');
        await invalid(upsert(protoMapping({ validity: { daysFromVisit: { days: 0 } } })), 'mapping.validity.days_from_visit.days');
        await invalid(upsert(protoMapping({ validity: { fixed: { start: '2026-02-30', end: '2026-03-01' } } })), 'mapping.validity.fixed.start');
        await invalid(upsert(protoMapping({ validity: { fixed: { start: '2026-05-01', end: '2026-04-01' } } })), 'mapping.validity.fixed.end');
        await invalid(upsert(protoMapping({ expiryRefund: { allowed: true, ratioBasisPoints: 10_001 } })), 'mapping.expiry_refund.ratio_basis_points');
        await assert.rejects(upsert(protoMapping({ scenicSpotCode: 'CHANGED', supplierInstance: 'zyb-gone' })), (e: ServiceError) => {
          assert.equal(e.code, status.INVALID_ARGUMENT);
          assert.match(e.details, /^mapping\.supplier_instance: unknown supplier instance "zyb-gone" \(configured: zyb-huangshan, lianhe-main\)/);
          assert.equal(e.metadata.get('error-reason')[0], 'UNKNOWN_SUPPLIER_INSTANCE');
          return true;
        });
        assert.equal((await products.get('HS-ADULT'))?.scenicSpotCode, 'HS-GATE-EAST', 'refused upserts changed nothing');
        await invalid(unary(client, 'getProductMapping', { outerIid: ' ', subOuterIid: '' }), 'outer_iid');
        await invalid(unary(client, 'listProductMappings', { pageSize: 501, pageToken: '', supplierInstance: '' }), 'page_size');
        await invalid(unary(client, 'listProductMappings', { pageSize: 0, pageToken: 'forged', supplierInstance: '' }), 'page_token');

        await unary(client, 'deleteProductMapping', { outerIid: 'HS-ADULT', subOuterIid: 'HS-RN' });
        for (const method of ['getProductMapping', 'deleteProductMapping']) {
          await assert.rejects(unary(client, method, { outerIid: 'HS-ADULT', subOuterIid: 'HS-RN' }), (e: ServiceError) => {
            assert.equal(e.code, status.NOT_FOUND);
            assert.match(e.details, /HS-ADULT\/HS-RN/);
            return true;
          });
        }
        // The SKU now falls back to the item mapping.
        assert.equal((await products.resolve('HS-ADULT', 'HS-RN'))?.supplierInstance, 'zyb-huangshan');
      } finally {
        client.close();
        await server.close(1000);
        await tdb.drop();
      }
    });
  });
}
