import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxAdapter } from '../../src/suppliers/sandbox/sandbox-adapter';
import { CapabilityNotSupportedError } from '../../src/suppliers/supplier-adapter';

const req = { ourOrderCode: 'TB-42', visitorName: 'a', mobile: '13800138000', supplierTicketType: 'T', quantity: 2, unitPriceFen: 100, visitDate: '2025-05-01' };

describe('sandbox supplier', () => {
  it('derives the same codes from the same order code, in any instance', async () => {
    const a = await new SandboxAdapter().placeOrder(req);
    const b = await new SandboxAdapter().placeOrder(req);
    const c = await new SandboxAdapter().placeOrder({ ...req, ourOrderCode: 'TB-43' });
    assert.ok(a.kind === 'placed' && b.kind === 'placed' && c.kind === 'placed');
    assert.deepEqual(b, a);
    assert.match(a.vouchers[0]!.code, /^\d{12}$/);
    assert.notEqual(c.vouchers[0]!.code, a.vouchers[0]!.code);
  });

  it('keeps the audit pending for the configured number of queries', async () => {
    const s = new SandboxAdapter({ auditPendingQueries: 2 });
    const placed = await s.placeOrder(req);
    assert.equal(placed.kind, 'placed');
    if (placed.kind !== 'placed') return;
    const ref = { ourOrderCode: req.ourOrderCode, supplierOrderId: placed.supplierOrderId };
    const refund = await s.requestRefund(ref, { refundId: 'R1', quantity: 1 });
    assert.equal(refund.kind, 'pending_audit');
    if (refund.kind !== 'pending_audit') return;
    assert.equal((await s.queryOrder(ref)).neutralStatus, 'refund_pending');
    const kinds = [];
    for (let i = 0; i < 4; i++) kinds.push((await s.queryRefundAudit(ref, refund.batchNo)).kind);
    assert.deepEqual(kinds, ['pending', 'pending', 'approved', 'approved']);
    const status = await s.queryOrder(ref);
    assert.deepEqual([status.refundedQuantity, status.refundableQuantity, status.neutralStatus], [1, 1, 'partially_refunded']);
  });

  it('capabilities can be switched off, and then the operation is refused', async () => {
    const s = new SandboxAdapter({ capabilities: { partialRefund: false } });
    assert.equal(s.capabilities.partialRefund, false);
    assert.equal(s.capabilities.qrImage, true);
    const placed = await s.placeOrder(req);
    if (placed.kind !== 'placed') return assert.fail('not placed');
    const ref = { ourOrderCode: req.ourOrderCode, supplierOrderId: placed.supplierOrderId };
    await assert.rejects(s.requestRefund(ref, { refundId: 'R1', quantity: 1 }), CapabilityNotSupportedError);
    assert.equal((await s.requestRefund(ref, { refundId: 'R2', quantity: 2 })).kind, 'pending_audit');
  });
});
