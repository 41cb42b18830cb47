/**
 * SupplierDirectory from SUPPLIERS_FILE: instances built and validated at start, env: secrets, clear errors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../src/config';
import { createSupplierDirectory, loadSupplierDirectory } from '../../../src/suppliers/supplier-directory';
import { ZhiyoubaoSimulator } from '../../support/supplier-simulators/zhiyoubao-simulator';

const SECRET = 'zyb-secret-value-never-printed';

const zyb = (over: Record<string, unknown> = {}) => ({
  type: 'zhiyoubao',
  endpoint: 'http://127.0.0.1:9/boss/service/code.htm',
  corpCode: 'TESTFX',
  userName: 'admin',
  privateKey: 'env:ZYB_KEY',
  ...over,
});
const lianhe = (over: Record<string, unknown> = {}) => ({
  type: 'lianhe',
  baseUrl: 'http://127.0.0.1:9',
  partnerId: 1985,
  apiName: 'testapi',
  clientSecret: 'plain-secret',
  ...over,
});

function configError(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.key, 'SUPPLIERS_FILE');
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes(SECRET), 'the secret must not appear in the error');
    return true;
  };
}

describe('supplier directory', () => {
  it('builds one adapter per instance, keyed by the instance code, with env: secrets resolved', async () => {
    const sim = await new ZhiyoubaoSimulator({ privateKey: SECRET }).start();
    try {
      const dir = createSupplierDirectory(
        { 'zyb-huangshan': zyb({ endpoint: sim.endpoint, corpCode: sim.corpCode, userName: sim.userName }), 'lianhe-main': lianhe(), 'demo': { type: 'sandbox' } },
        { env: { ZYB_KEY: SECRET } },
      );
      assert.deepEqual(dir.instances(), ['demo', 'lianhe-main', 'zyb-huangshan']);
      const adapter = dir.get('zyb-huangshan');
      assert.equal(adapter?.code, 'zhiyoubao');
      assert.equal(adapter?.instanceCode, 'zyb-huangshan');
      assert.equal(dir.get('lianhe-main')?.code, 'lianhe');
      assert.equal(dir.get('demo')?.instanceCode, 'demo');
      assert.equal(dir.get('nope'), undefined);
      // The resolved key really is the one used to sign: the simulator verifies it.
      const placed = await adapter!.placeOrder({ ourOrderCode: 'O-ENV-1', visitorName: '张三', mobile: '13800138000', supplierTicketType: 'PST20170001', quantity: 1, unitPriceFen: 100, visitDate: '2026-11-02' });
      assert.equal(placed.kind, 'placed');
      assert.equal(sim.badSignatures, 0);
    } finally {
      await sim.close();
    }
  });

  it('defaults to a single sandbox instance without a file', () => {
    const dir = loadSupplierDirectory(undefined);
    assert.deepEqual(dir.instances(), ['sandbox']);
    assert.equal(dir.get('sandbox')?.code, 'sandbox');
  });

  it('reads the file, and names the key when it is missing or not JSON', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tg-suppliers-'));
    try {
      const file = join(tmp, 'suppliers.json');
      writeFileSync(file, JSON.stringify({ 'lianhe-main': lianhe() }));
      assert.deepEqual(loadSupplierDirectory(file).instances(), ['lianhe-main']);
      writeFileSync(file, '{ not json');
      assert.throws(() => loadSupplierDirectory(file), configError(/is not valid JSON/));
      assert.throws(() => loadSupplierDirectory(join(tmp, 'missing.json')), configError(/cannot be read \(ENOENT\)/));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses bad entries with an error naming the instance and the field, never the secret', () => {
    const env = { ZYB_KEY: SECRET };
    assert.throws(() => createSupplierDirectory([], { env }), configError(/must hold a JSON object/));
    assert.throws(() => createSupplierDirectory({}, { env }), configError(/no supplier instance/));
    assert.throws(() => createSupplierDirectory({ 'zyb/../x': zyb() }, { env }), configError(/instance "zyb\/\.\.\/x": instance codes are/));
    assert.throws(() => createSupplierDirectory({ ['a'.repeat(33)]: zyb() }, { env }), configError(/instance codes are 1-32/));
    assert.throws(() => createSupplierDirectory({ x: { type: 'ctrip' } }, { env }), configError(/instance "x": type must be one of .*zhiyoubao/));
    assert.throws(() => createSupplierDirectory({ x: 'zhiyoubao' }, { env }), configError(/instance "x": must be an object/));
    assert.throws(() => createSupplierDirectory({ 'zyb-1': zyb() }, { env: {} }), configError(/instance "zyb-1"\.privateKey refers to environment variable ZYB_KEY, which is not set/));
    assert.throws(() => createSupplierDirectory({ 'zyb-1': zyb({ privatekey: SECRET }) }, { env }), configError(/instance "zyb-1": unknown zhiyoubao setting "privatekey"/));
    assert.throws(() => createSupplierDirectory({ 'zyb-1': zyb({ instanceCode: 'other' }) }, { env }), configError(/instanceCode must be left out/));
    assert.throws(() => createSupplierDirectory({ 'zyb-1': zyb({ endpoint: 'not a url' }) }, { env }), configError(/instance "zyb-1": .*endpoint/));
    assert.throws(() => createSupplierDirectory({ 'lh-1': lianhe({ partnerId: 'abc', clientSecret: SECRET }) }, { env }), configError(/instance "lh-1": .*partnerId/));
  });
});
