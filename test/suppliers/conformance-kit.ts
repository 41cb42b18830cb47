/**
 * The supplier contract, as one test suite that runs unchanged against every adapter.
 * Each supplier provides a harness: the adapter wired to its simulator (a real HTTP server that
 * verifies signatures), or to nothing for the sandbox. A new supplier passes this kit to be done.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ALL_CAPABILITIES,
  CapabilityNotSupportedError,
  type PlaceOrderRequest,
  type SupplierAdapter,
  SupplierCallError,
  type SupplierCapability,
  type SupplierOrderRef,
} from '../../src/suppliers/supplier-adapter';
import { type CallbackDelivery, startCallbackReceiver } from '../support/supplier-simulators/sim-http';

export interface HarnessOptions {
  /** How refund audits end. */
  readonly audit?: 'approve' | 'reject';
  /** Audit queries answered "pending" before the decision. */
  readonly auditPendingQueries?: number;
  /** Every supplier reply (or sandbox operation) takes this long. */
  readonly slowMs?: number;
  /** Capabilities to switch off, for adapters that can (the sandbox). */
  readonly disableCapabilities?: readonly SupplierCapability[];
}

export interface SupplierHarness {
  readonly adapter: SupplierAdapter;
  /** A ticket type the supplier sells (not real-name). */
  readonly ticketType: string;
  /** A ticket type the supplier refuses. */
  readonly unknownTicketType: string;
  /** Distinct orders the supplier holds. */
  orderCount(): number;
  /** Visitors pass the supplier's own gate (no callback). */
  admit(ref: SupplierOrderRef, count: number): void;
  /** Voucher SMS the supplier sent for this order, when it can tell. */
  smsCount?(ref: SupplierOrderRef): number;
  /** Wire faults; absent for suppliers without a wire (sandbox). */
  readonly wire?: {
    setServerError(on: boolean): void;
    setMalformed(on: boolean): void;
    /** Requests that arrived with a wrong signature (must stay 0). */
    badSignatures(): number;
    /** Requests the supplier received. */
    requestCount(): number;
  };
  /** The supplier delivers an admission notice to `url`. */
  sendAdmissionCallback(url: string, ref: SupplierOrderRef, count: number, opts?: { forgeSign?: boolean; copies?: number }): Promise<CallbackDelivery[]>;
  /** The supplier decides a refund and delivers the audit notice to `url` (when it has such notices). */
  sendRefundAuditCallback?(url: string, ref: SupplierOrderRef, batchNo: string, approve: boolean, opts?: { forgeSign?: boolean }): Promise<CallbackDelivery[]>;
  close(): Promise<void>;
}

export type MakeHarness = (opts?: HarnessOptions) => Promise<SupplierHarness>;

let seq = 0;
function orderCode(): string {
  seq++;
  return `TB${Date.now().toString().slice(-8)}${String(seq).padStart(4, '0')}`;
}

function placeRequest(h: SupplierHarness, quantity: number, overrides: Partial<PlaceOrderRequest> = {}): PlaceOrderRequest {
  return {
    ourOrderCode: orderCode(),
    visitorName: '张三',
    mobile: '13800138000',
    supplierTicketType: h.ticketType,
    quantity,
    unitPriceFen: 12_050,
    visitDate: '2025-05-01',
    ...overrides,
  };
}

async function withHarness(make: MakeHarness, opts: HarnessOptions | undefined, body: (h: SupplierHarness) => Promise<void>): Promise<void> {
  const h = await make(opts);
  try {
    await body(h);
    if (h.wire) assert.equal(h.wire.badSignatures(), 0, 'the supplier saw requests with a wrong signature');
  } finally {
    await h.close();
  }
}

async function expectCallError(p: Promise<unknown>, check: (e: SupplierCallError) => void): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SupplierCallError, `expected SupplierCallError, got ${String(e)}`);
    check(e);
    return true;
  });
}

/** Resolves the refund audit the way the adapter supports: polling, else the supplier's notice. */
async function auditOutcome(h: SupplierHarness, ref: SupplierOrderRef, batchNo: string, approve: boolean): Promise<'approved' | 'rejected'> {
  if (h.adapter.capabilities.auditPolling) {
    for (let i = 0; i < 5; i++) {
      const r = await h.adapter.queryRefundAudit(ref, batchNo);
      if (r.kind !== 'pending') return r.kind;
    }
    throw new Error('audit stayed pending');
  }
  assert.ok(h.adapter.capabilities.auditCallback && h.sendRefundAuditCallback, 'an adapter must offer audit polling or audit callbacks');
  const receiver = await startCallbackReceiver(h.adapter);
  try {
    const replies = await h.sendRefundAuditCallback(receiver.url, ref, batchNo, approve);
    assert.deepEqual(replies.map((r) => r.body), ['success']);
    const [result] = receiver.results;
    assert.ok(result?.ok && result.callback.type === 'refund_audit');
    assert.equal(result.callback.approved, approve);
    return result.callback.approved ? 'approved' : 'rejected';
  } finally {
    await receiver.close();
  }
}

export function runSupplierConformance(name: string, makeHarness: MakeHarness): void {
  describe(`supplier conformance: ${name}`, () => {
    it('places an order and hands out voucher codes for the whole quantity', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const res = await h.adapter.placeOrder(placeRequest(h, 3));
        assert.equal(res.kind, 'placed');
        if (res.kind !== 'placed') return;
        assert.ok(res.supplierOrderId.length > 0);
        assert.equal(res.alreadyExisted, false);
        assert.ok(res.vouchers.length > 0 && res.vouchers.every((v) => v.code.length > 0));
        assert.equal(res.vouchers.reduce((s, v) => s + v.quantity, 0), 3);
        assert.equal(h.orderCount(), 1);
      });
    });

    it('re-placing with the same order code returns the same order and creates no second one', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const req = placeRequest(h, 2);
        const first = await h.adapter.placeOrder(req);
        const again = await h.adapter.placeOrder(req);
        assert.ok(first.kind === 'placed' && again.kind === 'placed');
        assert.equal(again.supplierOrderId, first.supplierOrderId);
        assert.deepEqual(again.vouchers.map((v) => v.code), first.vouchers.map((v) => v.code));
        assert.equal(h.orderCount(), 1);
      });
    });

    it('a ticket type the supplier refuses is a permanent rejection, not a fault', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const res = await h.adapter.placeOrder(placeRequest(h, 1, { supplierTicketType: h.unknownTicketType }));
        assert.equal(res.kind, 'rejected');
        if (res.kind === 'rejected') {
          assert.equal(res.permanent, true);
          assert.ok(res.supplierCode.length > 0);
        }
        assert.equal(h.orderCount(), 0);
      });
    });

    it('query reports used, refundable and refunded quantities', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 5);
        const fresh = await h.adapter.queryOrder(ref);
        assert.deepEqual([fresh.usedQuantity, fresh.refundableQuantity, fresh.refundedQuantity], [0, 5, 0]);
        assert.ok(fresh.supplierState.length > 0);
        h.admit(ref, 2);
        const after = await h.adapter.queryOrder(ref);
        assert.deepEqual([after.usedQuantity, after.refundableQuantity, after.refundedQuantity], [2, 3, 0]);
        assert.notEqual(after.neutralStatus, fresh.neutralStatus);
      });
    });

    it('resends the voucher; a new mobile is honoured or refused as declared', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 1);
        const before = h.smsCount?.(ref);
        await h.adapter.resendVoucher(ref);
        if (before !== undefined) assert.equal(h.smsCount?.(ref), before + 1);
        if (h.adapter.capabilities.resendToNewMobile) {
          await h.adapter.resendVoucher(ref, { newMobile: '13900139000' });
        } else {
          await assert.rejects(h.adapter.resendVoucher(ref, { newMobile: '13900139000' }), CapabilityNotSupportedError);
        }
      });
    });

    for (const approve of [true, false]) {
      it(`partial refund goes to pending audit and is then ${approve ? 'approved' : 'rejected'}`, async () => {
        await withHarness(makeHarness, { audit: approve ? 'approve' : 'reject', auditPendingQueries: 1 }, async (h) => {
          const ref = await placeAndRef(h, 4);
          const res = await h.adapter.requestRefund(ref, { refundId: `R-${ref.ourOrderCode}`, quantity: 3 });
          assert.equal(res.kind, 'pending_audit');
          if (res.kind !== 'pending_audit') return;
          assert.ok(res.batchNo.length > 0);
          if (h.adapter.capabilities.auditPolling) assert.deepEqual(await h.adapter.queryRefundAudit(ref, res.batchNo), { kind: 'pending' });
          assert.equal(await auditOutcome(h, ref, res.batchNo, approve), approve ? 'approved' : 'rejected');
          const status = await h.adapter.queryOrder(ref);
          assert.equal(status.refundedQuantity, approve ? 3 : 0);
          assert.equal(status.refundableQuantity, approve ? 1 : 4);
        });
      });
    }

    it('repeating a refund request with the same refund id is the same refund', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 4);
        const a = await h.adapter.requestRefund(ref, { refundId: 'R-same', quantity: 2 });
        const b = await h.adapter.requestRefund(ref, { refundId: 'R-same', quantity: 2 });
        assert.ok(a.kind === 'pending_audit' && b.kind === 'pending_audit');
        assert.equal(b.batchNo, a.batchNo);
        // Only 2 units are held by the one pending refund: 2 remain refundable.
        const over = await h.adapter.requestRefund(ref, { refundId: 'R-other', quantity: 3 });
        assert.equal(over.kind, 'rejected');
      });
    });

    it('a refund above the refundable quantity is rejected with what is still refundable', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 5);
        h.admit(ref, 2);
        const res = await h.adapter.requestRefund(ref, { refundId: 'R-over', quantity: 4 });
        assert.equal(res.kind, 'rejected');
        if (res.kind === 'rejected') assert.equal(res.refundableQuantity, 3);
      });
    });

    it('an admission callback is verified, typed, answered as the supplier expects, and repeats collapse', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 3);
        const receiver = await startCallbackReceiver(h.adapter);
        try {
          const replies = await h.sendAdmissionCallback(receiver.url, ref, 2, { copies: 2 });
          assert.deepEqual(replies.map((r) => r.body), ['success', 'success']);
          assert.equal(receiver.results.length, 2);
          const [first] = receiver.results;
          assert.ok(first?.ok);
          assert.equal(first.callback.type, 'admission');
          if (first.callback.type === 'admission') {
            assert.ok(first.callback.count === 2 || first.callback.totalUsed === 2);
            assert.ok(first.callback.ourOrderCode === ref.ourOrderCode || first.callback.supplierOrderId === ref.supplierOrderId);
          }
          assert.equal(receiver.acceptedKeys().size, 1, 'a repeated notice must carry the same dedup key');
        } finally {
          await receiver.close();
        }
      });
    });

    it('a callback with a forged signature is refused', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 2);
        const receiver = await startCallbackReceiver(h.adapter);
        try {
          const replies = await h.sendAdmissionCallback(receiver.url, ref, 1, { forgeSign: true });
          assert.deepEqual(replies.map((r) => r.body), ['failure']);
          const [result] = receiver.results;
          assert.ok(result && !result.ok);
          assert.equal(result.reason, 'bad_signature');
        } finally {
          await receiver.close();
        }
      });
    });

    it('a refund audit callback is verified and typed; a forged one is refused', async (t) => {
      await withHarness(makeHarness, undefined, async (h) => {
        if (!h.adapter.capabilities.auditCallback || !h.sendRefundAuditCallback) {
          t.skip('adapter declares no audit callbacks');
          return;
        }
        const ref = await placeAndRef(h, 3);
        const res = await h.adapter.requestRefund(ref, { refundId: 'R-cb', quantity: 1 });
        assert.equal(res.kind, 'pending_audit');
        if (res.kind !== 'pending_audit') return;
        const receiver = await startCallbackReceiver(h.adapter);
        try {
          const forged = await h.sendRefundAuditCallback(receiver.url, ref, res.batchNo, true, { forgeSign: true });
          assert.deepEqual(forged.map((r) => r.body), ['failure']);
          const good = await h.sendRefundAuditCallback(receiver.url, ref, res.batchNo, true);
          assert.deepEqual(good.map((r) => r.body), ['success']);
          const [bad, ok] = receiver.results;
          assert.ok(bad && !bad.ok && bad.reason === 'bad_signature');
          assert.ok(ok?.ok && ok.callback.type === 'refund_audit');
          assert.equal(ok.callback.approved, true);
          assert.equal(ok.callback.batchNo, res.batchNo);
        } finally {
          await receiver.close();
        }
      });
    });

    it('a malformed reply is a retryable error, never success', async (t) => {
      await withHarness(makeHarness, undefined, async (h) => {
        if (!h.wire) return t.skip('no wire');
        h.wire.setMalformed(true);
        await expectCallError(h.adapter.placeOrder(placeRequest(h, 1)), (e) => {
          assert.equal(e.failure, 'malformed_reply');
          assert.equal(e.retryable, true);
          assert.equal(e.ambiguous, true);
        });
        h.wire.setMalformed(false);
        const ref = await placeAndRef(h, 1);
        h.wire.setMalformed(true);
        await expectCallError(h.adapter.queryOrder(ref), (e) => assert.equal(e.failure, 'malformed_reply'));
      });
    });

    it('a 5xx is a retryable error', async (t) => {
      await withHarness(makeHarness, undefined, async (h) => {
        if (!h.wire) return t.skip('no wire');
        h.wire.setServerError(true);
        await expectCallError(h.adapter.placeOrder(placeRequest(h, 1)), (e) => {
          assert.equal(e.failure, 'http_status');
          assert.equal(e.httpStatus, 503);
          assert.equal(e.retryable, true);
        });
      });
    });

    it('a slow supplier is aborted by the caller\'s signal within the deadline', async () => {
      await withHarness(makeHarness, { slowMs: 5_000 }, async (h) => {
        const started = performance.now();
        await expectCallError(h.adapter.placeOrder(placeRequest(h, 1), { signal: AbortSignal.timeout(150) }), (e) => {
          assert.equal(e.failure, 'timeout');
          assert.equal(e.retryable, true);
        });
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 1_500, `took ${elapsed.toFixed(0)} ms`);
      });
    });

    it('an undeclared capability throws CapabilityNotSupportedError and sends nothing', async () => {
      let opts: HarnessOptions | undefined;
      {
        const probe = await makeHarness();
        const missing = ALL_CAPABILITIES.filter((c) => !probe.adapter.capabilities[c]);
        await probe.close();
        if (missing.length === 0) opts = { disableCapabilities: ['validityChange', 'qrImage', 'checkRecords', 'resendToNewMobile'] };
      }
      await withHarness(makeHarness, opts, async (h) => {
        const missing = ALL_CAPABILITIES.filter((c) => !h.adapter.capabilities[c]);
        assert.ok(missing.length > 0, 'the harness must be able to switch capabilities off');
        const ref = await placeAndRef(h, 2);
        const before = h.wire?.requestCount();
        const calls: Partial<Record<SupplierCapability, () => Promise<unknown>>> = {
          partialRefund: () => h.adapter.requestRefund(ref, { refundId: 'R-part', quantity: 1 }),
          validityChange: () => h.adapter.changeValidity(ref, { start: Date.UTC(2025, 4, 1), end: Date.UTC(2025, 11, 31) }),
          resendToNewMobile: () => h.adapter.resendVoucher(ref, { newMobile: '13900139000' }),
          qrImage: () => h.adapter.queryQrImageUrl(ref),
          auditPolling: () => h.adapter.queryRefundAudit(ref, 'B-1'),
          checkRecords: () => h.adapter.queryCheckRecords(ref),
        };
        let checked = 0;
        for (const cap of missing) {
          const call = calls[cap];
          if (!call) continue;
          await assert.rejects(call(), (e: unknown) => e instanceof CapabilityNotSupportedError && e.capability === cap);
          checked++;
        }
        assert.ok(checked > 0);
        if (before !== undefined) assert.equal(h.wire?.requestCount(), before, 'nothing may be sent for an unsupported operation');
      });
    });

    it('declared capabilities work: QR image, check records, validity change', async () => {
      await withHarness(makeHarness, undefined, async (h) => {
        const ref = await placeAndRef(h, 3);
        h.admit(ref, 2);
        const caps = h.adapter.capabilities;
        if (caps.qrImage) assert.match(await h.adapter.queryQrImageUrl(ref), /^(https?|sandbox):\/\//);
        if (caps.checkRecords) {
          const records = await h.adapter.queryCheckRecords(ref);
          assert.equal(records.reduce((s, r) => s + r.count, 0), 2);
        }
        if (caps.validityChange) await h.adapter.changeValidity(ref, { start: Date.UTC(2025, 4, 1), end: Date.UTC(2026, 4, 1) });
      });
    });
  });
}

/** Places an order and returns a full ref (our code included). */
async function placeAndRef(h: SupplierHarness, quantity: number): Promise<SupplierOrderRef> {
  const req = placeRequest(h, quantity);
  const res = await h.adapter.placeOrder(req);
  assert.equal(res.kind, 'placed', `placement failed: ${JSON.stringify(res)}`);
  if (res.kind !== 'placed') throw new Error('unreachable');
  return { ourOrderCode: req.ourOrderCode, supplierOrderId: res.supplierOrderId, supplierSubOrderIds: res.supplierSubOrderIds };
}
