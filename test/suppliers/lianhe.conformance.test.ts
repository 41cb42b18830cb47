import { createSupplier } from '../../src/suppliers/supplier-registry';
import { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import { runSupplierConformance } from './conformance-kit';

runSupplierConformance('lianhe', async (opts = {}) => {
  const sim = await new LianheSimulator().start();
  sim.switches.slowMs = opts.slowMs ?? 0;
  const adapter = createSupplier('lianhe', {
    instanceCode: 'lianhe-test',
    baseUrl: sim.baseUrl,
    partnerId: sim.partnerId,
    apiName: sim.apiName,
    clientSecret: sim.clientSecret,
    timeoutMs: 3_000,
  });
  return {
    adapter,
    ticketType: '9001',
    unknownTicketType: '404404',
    orderCount: () => sim.orders.size,
    admit: (ref, count) => sim.admit(ref.ourOrderCode, count),
    smsCount: (ref) => sim.mustOrder(ref.ourOrderCode).smsSent,
    wire: {
      setServerError: (on) => void (sim.switches.serverError = on),
      setMalformed: (on) => void (sim.switches.malformed = on),
      badSignatures: () => sim.badSignatures,
      requestCount: () => sim.methods.length,
    },
    sendAdmissionCallback: (url, ref, count, o = {}) => {
      sim.switches.callbackCopies = o.copies ?? 1;
      return sim.sendAdmissionCallback(url, ref.ourOrderCode, count, { forgeSign: o.forgeSign });
    },
    // Lianhe's audit ends in its back office; the outcome arrives only as reNotify.
    sendRefundAuditCallback: (url, ref, batchNo, approve, o = {}) => sim.sendRefundAuditCallback(url, ref.ourOrderCode, batchNo, approve, o),
    close: () => sim.close(),
  };
});
