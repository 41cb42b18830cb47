/** The simulators really verify signatures: a wrongly signed adapter is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SupplierCallError } from '../../src/suppliers/supplier-adapter';
import { createSupplier } from '../../src/suppliers/supplier-registry';
import { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import { ZhiyoubaoSimulator } from '../support/supplier-simulators/zhiyoubao-simulator';

const place = { ourOrderCode: 'TB-S1', visitorName: 'a', mobile: '13800138000', supplierTicketType: 'PST20170001', quantity: 1, unitPriceFen: 100, visitDate: '2025-05-01' };
const refused = (status: number) => (e: unknown) => e instanceof SupplierCallError && e.httpStatus === status && !e.retryable;

describe('supplier simulators verify signatures', () => {
  it('zhiyoubao refuses a request signed with the wrong private key', async () => {
    const sim = await new ZhiyoubaoSimulator().start();
    try {
      const a = createSupplier('zhiyoubao', { endpoint: sim.endpoint, corpCode: sim.corpCode, userName: sim.userName, privateKey: 'wrong' });
      await assert.rejects(a.placeOrder(place), refused(403));
      assert.equal(sim.badSignatures, 1);
      assert.equal(sim.orders.size, 0);
    } finally {
      await sim.close();
    }
  });

  it('lianhe refuses a wrong secret and a stale Date', async () => {
    const sim = await new LianheSimulator().start();
    try {
      const config = { baseUrl: sim.baseUrl, partnerId: sim.partnerId, apiName: sim.apiName, clientSecret: 'wrong' };
      await assert.rejects(createSupplier('lianhe', config).placeOrder({ ...place, supplierTicketType: '9001' }), refused(401));
      const stale = createSupplier('lianhe', { ...config, clientSecret: sim.clientSecret }, { clock: { now: () => Date.now() - 3_600_000 } });
      await assert.rejects(stale.placeOrder({ ...place, supplierTicketType: '9001' }), refused(401));
      assert.equal(sim.badSignatures, 2);
      assert.equal(sim.orders.size, 0);
    } finally {
      await sim.close();
    }
  });
});
