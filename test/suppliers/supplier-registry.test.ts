import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LianheAdapter } from '../../src/suppliers/lianhe/lianhe-adapter';
import { SandboxAdapter } from '../../src/suppliers/sandbox/sandbox-adapter';
import { maskPersonalData, SupplierConfigError } from '../../src/suppliers/supplier-adapter';
import { fenToYuan } from '../../src/suppliers/supplier-http';
import { createSupplier, supplierCodes } from '../../src/suppliers/supplier-registry';
import { ZhiyoubaoAdapter } from '../../src/suppliers/zhiyoubao/zhiyoubao-adapter';

describe('supplier registry', () => {
  it('knows every supplier and builds each from its instance config', () => {
    assert.deepEqual(supplierCodes().sort(), ['lianhe', 'sandbox', 'zhiyoubao']);
    const zyb = createSupplier('zhiyoubao', { instanceCode: 'zyb-hs', endpoint: 'http://127.0.0.1:1/x', corpCode: 'C', userName: 'U', privateKey: 'K' });
    assert.ok(zyb instanceof ZhiyoubaoAdapter);
    assert.equal(zyb.code, 'zhiyoubao');
    assert.equal(zyb.instanceCode, 'zyb-hs');
    assert.ok(createSupplier('lianhe', { baseUrl: 'http://127.0.0.1:1', partnerId: 1, apiName: 'a', clientSecret: 's' }) instanceof LianheAdapter);
    const sandbox = createSupplier('sandbox', undefined);
    assert.ok(sandbox instanceof SandboxAdapter);
    assert.equal(sandbox.instanceCode, 'sandbox');
  });

  it('refuses unknown suppliers and invalid configs with a typed error that leaks no secret', () => {
    assert.throws(() => createSupplier('nope', {}), SupplierConfigError);
    assert.throws(() => createSupplier('toString', {}), SupplierConfigError);
    assert.throws(() => createSupplier('zhiyoubao', { endpoint: 'not a url', corpCode: 'C', userName: 'U', privateKey: 'SECRET-KEY-1' }), (e: unknown) => {
      assert.ok(e instanceof SupplierConfigError);
      assert.match(e.message, /endpoint/);
      assert.ok(!e.message.includes('SECRET-KEY-1'));
      return true;
    });
    assert.throws(() => createSupplier('lianhe', { baseUrl: 'http://127.0.0.1:1', partnerId: -1, apiName: 'a', clientSecret: 's' }), SupplierConfigError);
    assert.throws(() => createSupplier('sandbox', 'oops'), SupplierConfigError);
  });
});

describe('supplier helpers', () => {
  it('fenToYuan formats integer fen exactly and refuses fractions', () => {
    assert.equal(fenToYuan(0), '0.00');
    assert.equal(fenToYuan(5), '0.05');
    assert.equal(fenToYuan(12_050), '120.50');
    assert.equal(fenToYuan(100_000_001), '1000000.01');
    assert.throws(() => fenToYuan(1.5), RangeError);
    assert.throws(() => fenToYuan(-1), RangeError);
  });

  it('maskPersonalData hides mobiles and ID-card numbers but keeps order codes', () => {
    const masked = maskPersonalData('mobile 13800138000 id 11010119900307567X order 20250501000012345678901');
    assert.equal(masked, 'mobile 138****8000 id 110***********567X order 20250501000012345678901');
  });
});
