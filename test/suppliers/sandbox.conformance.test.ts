import { buildSandboxCallback, SandboxAdapter } from '../../src/suppliers/sandbox/sandbox-adapter';
import { createSupplier } from '../../src/suppliers/supplier-registry';
import { deliver } from '../support/supplier-simulators/sim-http';
import { runSupplierConformance } from './conformance-kit';

const SECRET = 'sandbox-test-secret';

runSupplierConformance('sandbox', async (opts = {}) => {
  const adapter = createSupplier('sandbox', {
    callbackSecret: SECRET,
    auditDecision: opts.audit ?? 'approve',
    auditPendingQueries: opts.auditPendingQueries ?? 0,
    latencyMs: opts.slowMs ?? 0,
    rejectTicketTypes: ['SBX-NOPE'],
    capabilities: Object.fromEntries((opts.disableCapabilities ?? []).map((c) => [c, false])),
  });
  if (!(adapter instanceof SandboxAdapter)) throw new Error('registry did not build the sandbox');
  let events = 0;
  return {
    adapter,
    ticketType: 'SBX-ADULT',
    unknownTicketType: 'SBX-NOPE',
    orderCount: () => adapter.orderCount,
    admit: (ref, count) => {
      if (!adapter.recordAdmission(ref.ourOrderCode, count)) throw new Error('admission refused');
    },
    sendAdmissionCallback: async (url, ref, count, o = {}) => {
      if (!adapter.recordAdmission(ref.ourOrderCode, count)) throw new Error('admission refused');
      const cb = buildSandboxCallback(o.forgeSign ? 'forged' : SECRET, { type: 'admission', eventId: `E${++events}`, orderCode: ref.ourOrderCode, count });
      return deliver(url, { method: 'POST', headers: cb.headers, body: cb.body }, o.copies ?? 1);
    },
    sendRefundAuditCallback: async (url, ref, batchNo, approve, o = {}) => {
      const cb = buildSandboxCallback(o.forgeSign ? 'forged' : SECRET, { type: 'refund_audit', eventId: `E${++events}`, orderCode: ref.ourOrderCode, batchNo, approved: approve });
      return deliver(url, { method: 'POST', headers: cb.headers, body: cb.body }, 1);
    },
    close: async () => undefined,
  };
});
