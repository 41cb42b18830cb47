import { createSupplier } from '../../src/suppliers/supplier-registry';
import { ZhiyoubaoSimulator } from '../support/supplier-simulators/zhiyoubao-simulator';
import { runSupplierConformance } from './conformance-kit';

runSupplierConformance('zhiyoubao', async (opts = {}) => {
  const sim = await new ZhiyoubaoSimulator().start();
  sim.switches.audit = opts.audit ?? 'approve';
  sim.switches.auditPendingQueries = opts.auditPendingQueries ?? 0;
  sim.switches.slowMs = opts.slowMs ?? 0;
  const adapter = createSupplier('zhiyoubao', {
    instanceCode: 'zyb-test',
    endpoint: sim.endpoint,
    corpCode: sim.corpCode,
    userName: sim.userName,
    privateKey: sim.privateKey,
    timeoutMs: 3_000,
  });
  return {
    adapter,
    ticketType: 'PST20170001',
    unknownTicketType: 'PST-NOPE',
    orderCount: () => sim.orders.size,
    admit: (ref, count) => sim.admit(ref.ourOrderCode, count),
    smsCount: (ref) => sim.mustOrder(ref.ourOrderCode).smsSent,
    wire: {
      setServerError: (on) => void (sim.switches.serverError = on),
      setMalformed: (on) => void (sim.switches.malformed = on),
      badSignatures: () => sim.badSignatures,
      requestCount: () => sim.transactions.length,
    },
    sendAdmissionCallback: (url, ref, count, o = {}) => {
      sim.switches.callbackCopies = o.copies ?? 1;
      return sim.sendAdmissionCallback(url, ref.ourOrderCode, count, { forgeSign: o.forgeSign });
    },
    sendRefundAuditCallback: (url, ref, batchNo, approve, o = {}) => sim.sendRefundAuditCallback(url, ref.ourOrderCode, batchNo, approve, o),
    close: () => sim.close(),
  };
});
