/**
 * The supplier module inside the real Gateway: SUPPLIERS_FILE and PRODUCT_CATALOG_FILE at start, the product
 * admin RPCs on the gateway's gRPC port, one callback route per instance on its HTTP port.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway } from '../../../src/app';
import { ConfigError, loadConfig } from '../../../src/config';
import { ProductAdminServiceClient, type GetProductMappingResponse } from '../../../src/gen/ticketgateway/admin/v1/product_admin';
import { createLogger } from '../../../src/observability/logger';
import { InboundMessageEntity } from '../../../src/persistence/entities/inbound-message.entity';
import { buildSandboxCallback } from '../../../src/suppliers/sandbox/sandbox-adapter';
import { unary } from '../../support/grpc-clients';

const entry = (outer: string, supplier: string) => ({
  outer_iid: outer,
  supplier,
  ticket_type: 'T1',
  scenic_spot: 'S1',
  check_methods: ['CODE'],
  real_name_required: false,
  validity: { kind: 'days_from_visit', days: 1 },
  expiry_refund: { allowed: false, ratio_bp: 0 },
});

function env(dir: string, more: Record<string, string> = {}) {
  return loadConfig({ DATA_DIR: dir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ...more });
}

describe('supplier module in the gateway', { timeout: 90_000 }, () => {
  it('builds instances from SUPPLIERS_FILE, loads the catalog, serves admin RPCs and callback routes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-gw-suppliers-'));
    try {
      const suppliersFile = join(dir, 'suppliers.json');
      writeFileSync(suppliersFile, JSON.stringify({ 'demo-a': { type: 'sandbox', callbackSecret: 'env:TG_TEST_SANDBOX_SECRET' }, 'demo-b': { type: 'sandbox' } }));
      const catalogFile = join(dir, 'catalog.json');
      writeFileSync(catalogFile, JSON.stringify({ products: [entry('ITEM-A', 'demo-a'), entry('ITEM-B', 'demo-b')] }));
      process.env.TG_TEST_SANDBOX_SECRET = 'a-sandbox-secret';
      const gateway = await Gateway.start({
        config: env(join(dir, 'data'), { SUPPLIERS_FILE: suppliersFile, PRODUCT_CATALOG_FILE: catalogFile }),
        logger: createLogger('silent'),
        defaultMetrics: false,
      });
      const client = new ProductAdminServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
      try {
        assert.deepEqual(gateway.supplierDirectory.instances(), ['demo-a', 'demo-b']);
        assert.equal((await gateway.productDirectory.resolve('ITEM-B', null))?.supplierInstance, 'demo-b');
        const got = await unary<unknown, GetProductMappingResponse>(client, 'getProductMapping', { outerIid: 'ITEM-A', subOuterIid: '' });
        assert.equal(got.mapping?.supplierInstance, 'demo-a');
        await assert.rejects(unary(client, 'getProductMapping', { outerIid: 'ITEM-C', subOuterIid: '' }), (e: ServiceError) => e.code === 5);

        const base = `http://127.0.0.1:${gateway.httpPort}`;
        // Signed with the wrong secret (demo-a's comes from the environment): refused, nothing recorded.
        const forged = buildSandboxCallback('sandbox-callback-secret', { type: 'admission', eventId: 'e1', orderCode: 'O-1', count: 1 });
        const res = await fetch(`${base}/suppliers/demo-a/callback`, { method: 'POST', headers: forged.headers, body: forged.body, signal: AbortSignal.timeout(5000) });
        assert.equal(await res.text(), 'failure');
        assert.equal(await gateway.db.read((em) => em.count(InboundMessageEntity)), 0);
        const unknown = await fetch(`${base}/suppliers/nobody/callback`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5000) });
        assert.equal(unknown.status, 404);
        await unknown.text();
      } finally {
        client.close();
        await gateway.stop();
        delete process.env.TG_TEST_SANDBOX_SECRET;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on a catalog entry naming an unconfigured supplier, or a bad SUPPLIERS_FILE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-gw-suppliers-'));
    try {
      const catalogFile = join(dir, 'catalog.json');
      writeFileSync(catalogFile, JSON.stringify({ products: [entry('ITEM-A', 'sandbox'), entry('ITEM-Z', 'zyb-missing')] }));
      await assert.rejects(
        Gateway.start({ config: env(join(dir, 'data'), { PRODUCT_CATALOG_FILE: catalogFile }), logger: createLogger('silent'), defaultMetrics: false }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, /PRODUCT_CATALOG_FILE products\[1\] \(outer_iid=ITEM-Z\): supplier: unknown supplier instance "zyb-missing" \(configured: sandbox\)/);
          return true;
        },
      );
      const suppliersFile = join(dir, 'suppliers.json');
      writeFileSync(suppliersFile, JSON.stringify({ 'zyb-1': { type: 'zhiyoubao', endpoint: 'http://127.0.0.1:9/x', corpCode: 'c', userName: 'u' } }));
      await assert.rejects(
        Gateway.start({ config: env(join(dir, 'data'), { SUPPLIERS_FILE: suppliersFile }), logger: createLogger('silent'), defaultMetrics: false }),
        (e: unknown) => e instanceof ConfigError && /SUPPLIERS_FILE instance "zyb-1": .*privateKey/.test(e.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
