/**
 * Supplier callback routes on a real HttpServer, fed by the Zhiyoubao and Lianhe simulators sending real
 * signed callbacks (and repeating them), on SQLite and MariaDB.
 */
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityManager } from 'typeorm';
import type { Clock } from '../../../src/domain/model';
import { HttpServer } from '../../../src/http/http-server';
import { createLogger } from '../../../src/observability/logger';
import { GatewayMetrics } from '../../../src/observability/metrics';
import { InboundMessageEntity } from '../../../src/persistence/entities/inbound-message.entity';
import { OperatorExceptionEntity } from '../../../src/persistence/entities/operator-exception.entity';
import {
  CallbackSinkRegistry,
  registerSupplierCallbackRoutes,
  storedDedupKey,
  supplierCallbackPath,
  type CallbackSinkDeps,
  type SupplierCallbackSink,
} from '../../../src/suppliers/callback-routes';
import type { SupplierCallback } from '../../../src/suppliers/supplier-adapter';
import { createSupplierDirectory, type SupplierDirectory } from '../../../src/suppliers/supplier-directory';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../../support/database';
import { LianheSimulator } from '../../support/supplier-simulators/lianhe-simulator';
import { ZhiyoubaoSimulator } from '../../support/supplier-simulators/zhiyoubao-simulator';

const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);

interface Seen {
  type: SupplierCallback['type'];
  cb: SupplierCallback;
  deps: CallbackSinkDeps;
}

/** A sink that records what it got and writes a row through the callback's transaction. */
class RecordingSink implements SupplierCallbackSink {
  readonly seen: Seen[] = [];
  failNext = 0;
  private async note(em: EntityManager, type: SupplierCallback['type'], cb: SupplierCallback, deps: CallbackSinkDeps): Promise<void> {
    await em.insert(OperatorExceptionEntity, { kind: `test_${type}`, orderId: null, detail: cb.dedupKey, createdAt: deps.receivedAt, resolvedAt: null });
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('sink failed');
    }
    this.seen.push({ type, cb, deps });
  }
  onAdmission = (em: EntityManager, cb: SupplierCallback, deps: CallbackSinkDeps) => this.note(em, 'admission', cb, deps);
  onRefundAudit = (em: EntityManager, cb: SupplierCallback, deps: CallbackSinkDeps) => this.note(em, 'refund_audit', cb, deps);
}

interface Rig {
  tdb: TestDatabase;
  zyb: ZhiyoubaoSimulator;
  lianhe: LianheSimulator;
  sink: RecordingSink;
  suppliers: SupplierDirectory;
  metrics: GatewayMetrics;
  base: string;
  paths: string[];
  inboundCount(): Promise<number>;
  sinkRows(): Promise<number>;
}

async function withRig(kind: 'sqlite' | 'mysql', fn: (r: Rig) => Promise<void>): Promise<void> {
  const tdb = await openTestDatabase(kind);
  const zyb = await new ZhiyoubaoSimulator().start();
  const lianhe = await new LianheSimulator().start();
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const http = new HttpServer(createLogger('silent'), metrics);
  try {
    const clock: Clock = { now: () => T0 };
    const suppliers = createSupplierDirectory(
      {
        'zyb-1': { type: 'zhiyoubao', endpoint: zyb.endpoint, corpCode: zyb.corpCode, userName: zyb.userName, privateKey: 'env:TEST_ZYB_KEY', timeoutMs: 3000 },
        'lianhe-1': { type: 'lianhe', baseUrl: lianhe.baseUrl, partnerId: lianhe.partnerId, apiName: lianhe.apiName, clientSecret: lianhe.clientSecret, timeoutMs: 3000 },
      },
      { env: { TEST_ZYB_KEY: zyb.privateKey } },
    );
    const sink = new RecordingSink();
    const sinks = new CallbackSinkRegistry().register(sink);
    const paths = registerSupplierCallbackRoutes(http, { db: tdb.db, suppliers, sinks, clock, metrics });
    const port = await http.listen(0, '127.0.0.1');
    // Orders the simulators know, so they can admit visitors and audit refunds.
    const zybAdapter = suppliers.get('zyb-1')!;
    const lianheAdapter = suppliers.get('lianhe-1')!;
    const place = { visitorName: '张三', mobile: '13800138000', quantity: 3, unitPriceFen: 100, visitDate: '2026-11-02' };
    assert.equal((await zybAdapter.placeOrder({ ...place, ourOrderCode: 'O-ZYB-1', supplierTicketType: 'PST20170001' })).kind, 'placed');
    assert.equal((await lianheAdapter.placeOrder({ ...place, ourOrderCode: 'O-LH-1', supplierTicketType: '9001' })).kind, 'placed');
    await fn({
      tdb,
      zyb,
      lianhe,
      sink,
      suppliers,
      metrics,
      base: `http://127.0.0.1:${port}`,
      paths,
      inboundCount: () => tdb.db.read((em) => em.count(InboundMessageEntity)),
      sinkRows: () => tdb.db.read((em) => em.count(OperatorExceptionEntity)),
    });
  } finally {
    await http.close(500);
    await zyb.close();
    await lianhe.close();
    await tdb.drop();
  }
}

async function metric(metrics: GatewayMetrics, labels: Record<string, string>): Promise<number> {
  const m = await metrics.supplierCallbacks.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k as keyof typeof v.labels] === want)).reduce((a, v) => a + v.value, 0);
}

for (const kind of DATABASE_KINDS) {
  describe(`supplier callback routes on ${kind}`, { timeout: 90_000 }, () => {
    it('registers one path per instance; an unknown instance is 404', async () => {
      await withRig(kind, async (r) => {
        assert.deepEqual(r.paths.sort(), [supplierCallbackPath('lianhe-1'), supplierCallbackPath('zyb-1')]);
        const res = await fetch(`${r.base}/suppliers/zyb-unknown/callback?order_no=x`, { signal: AbortSignal.timeout(5000) });
        assert.equal(res.status, 404);
        await res.text();
      });
    });

    it('Zhiyoubao: an admission sent twice reaches the sink once, both get success; a forged one gets failure and records nothing', async () => {
      await withRig(kind, async (r) => {
        const url = `${r.base}${supplierCallbackPath('zyb-1')}`;
        r.zyb.switches.callbackCopies = 2;
        const replies = await r.zyb.sendAdmissionCallback(url, 'O-ZYB-1', 1);
        assert.deepEqual(replies.map((x) => [x.status, x.body]), [[200, 'success'], [200, 'success']]);
        assert.equal(r.sink.seen.length, 1);
        const [seen] = r.sink.seen;
        assert.equal(seen?.type, 'admission');
        assert.equal(seen?.cb.ourOrderCode, 'O-ZYB-1');
        assert.equal(seen?.deps.instanceCode, 'zyb-1');
        assert.equal(seen?.deps.adapter.code, 'zhiyoubao');
        assert.equal(seen?.deps.receivedAt, T0);
        assert.equal(await r.inboundCount(), 1);
        assert.equal(await r.sinkRows(), 1);
        const [row] = await r.tdb.db.read((em) => em.find(InboundMessageEntity));
        assert.equal(row?.source, 'zyb-1');
        assert.equal(row?.dedupKey, storedDedupKey(seen!.cb.dedupKey));
        assert.equal(row?.responseBody, 'success');

        r.zyb.switches.callbackCopies = 1;
        const forged = await r.zyb.sendAdmissionCallback(url, 'O-ZYB-1', 1, { forgeSign: true });
        assert.deepEqual(forged.map((x) => x.body), ['failure']);
        assert.equal(r.sink.seen.length, 1);
        assert.equal(await r.inboundCount(), 1);
        assert.equal(await r.sinkRows(), 1);

        assert.equal(await metric(r.metrics, { supplier: 'zyb-1', type: 'admission', result: 'accepted' }), 1);
        assert.equal(await metric(r.metrics, { supplier: 'zyb-1', type: 'admission', result: 'duplicate' }), 1);
        assert.equal(await metric(r.metrics, { supplier: 'zyb-1', result: 'rejected' }), 1);
      });
    });

    it('Zhiyoubao: a refund audit notice sent twice reaches onRefundAudit once; a forged one is refused', async () => {
      await withRig(kind, async (r) => {
        const url = `${r.base}${supplierCallbackPath('zyb-1')}`;
        const refund = await r.suppliers
          .get('zyb-1')!
          .requestRefund({ ourOrderCode: 'O-ZYB-1', supplierOrderId: r.zyb.mustOrder('O-ZYB-1').zybOrderCode }, { refundId: 'RF-1', quantity: 1 });
        assert.ok(refund.kind === 'pending_audit');
        const forged = await r.zyb.sendRefundAuditCallback(url, 'O-ZYB-1', refund.batchNo, true, { forgeSign: true });
        assert.deepEqual(forged.map((x) => x.body), ['failure']);
        assert.equal(await r.inboundCount(), 0);
        r.zyb.switches.callbackCopies = 2;
        const replies = await r.zyb.sendRefundAuditCallback(url, 'O-ZYB-1', refund.batchNo, true);
        assert.deepEqual(replies.map((x) => x.body), ['success', 'success']);
        assert.equal(r.sink.seen.length, 1);
        const cb = r.sink.seen[0]!.cb;
        assert.ok(cb.type === 'refund_audit');
        assert.equal(cb.approved, true);
        assert.equal(cb.batchNo, refund.batchNo);
        assert.equal(await r.inboundCount(), 1);
      });
    });

    it('Lianhe: snNotify and reNotify POSTed twice each take effect once; a forged Authorization gets failure and records nothing', async () => {
      await withRig(kind, async (r) => {
        const url = `${r.base}${supplierCallbackPath('lianhe-1')}`;
        r.lianhe.switches.callbackCopies = 2;
        const replies = await r.lianhe.sendAdmissionCallback(url, 'O-LH-1', 1);
        assert.deepEqual(replies.map((x) => [x.status, x.body]), [[200, 'success'], [200, 'success']]);
        assert.equal(r.sink.seen.length, 1);
        const adm = r.sink.seen[0]!.cb;
        assert.ok(adm.type === 'admission');
        assert.equal(adm.totalUsed, 1);
        assert.equal(r.sink.seen[0]!.deps.instanceCode, 'lianhe-1');

        r.lianhe.switches.callbackCopies = 1;
        const forged = await r.lianhe.sendAdmissionCallback(url, 'O-LH-1', 1, { forgeSign: true });
        assert.deepEqual(forged.map((x) => x.body), ['failure']);
        assert.equal(r.sink.seen.length, 1);
        assert.equal(await r.inboundCount(), 1);

        // A refund the simulator holds, then its audit outcome by reNotify.
        const refund = await r.suppliers.get('lianhe-1')!.requestRefund({ ourOrderCode: 'O-LH-1', supplierOrderId: r.lianhe.mustOrder('O-LH-1').lhOrderId }, { refundId: 'RF-LH-1', quantity: 1 });
        assert.equal(refund.kind, 'pending_audit');
        r.lianhe.switches.callbackCopies = 2;
        const audit = await r.lianhe.sendRefundAuditCallback(url, 'O-LH-1', 'RF-LH-1', false);
        assert.deepEqual(audit.map((x) => x.body), ['success', 'success']);
        assert.equal(r.sink.seen.length, 2);
        const re = r.sink.seen[1]!.cb;
        assert.ok(re.type === 'refund_audit');
        assert.equal(re.approved, false);
        assert.equal(re.batchNo, 'RF-LH-1');
        assert.equal(await r.inboundCount(), 2);
        assert.equal(await r.sinkRows(), 2);
      });
    });

    it('the same callback delivered twice at the same moment takes effect once', async () => {
      await withRig(kind, async (r) => {
        r.zyb.admit('O-ZYB-1', 1);
        // The check notice exactly as Zhiyoubao signs it: md5("order_no=" + order_no + key).
        const sign = createHash('md5').update(`order_no=O-ZYB-1${r.zyb.privateKey}`, 'utf8').digest('hex');
        const url = `${r.base}${supplierCallbackPath('zyb-1')}?${new URLSearchParams({ order_no: 'O-ZYB-1', status: 'check', checkNum: '1', sign })}`;
        const replies = await Promise.all([0, 1, 2].map(() => fetch(url, { signal: AbortSignal.timeout(5000) }).then(async (res) => [res.status, await res.text()])));
        assert.deepEqual(replies, [[200, 'success'], [200, 'success'], [200, 'success']]);
        assert.equal(r.sink.seen.length, 1);
        assert.equal(await r.inboundCount(), 1);
        assert.equal(await r.sinkRows(), 1);
      });
    });

    it('a failing sink rolls the record back and answers failure, so the repeat is processed; an unhandled type is not acknowledged', async () => {
      await withRig(kind, async (r) => {
        const url = `${r.base}${supplierCallbackPath('zyb-1')}`;
        r.sink.failNext = 1;
        r.zyb.switches.callbackCopies = 2;
        const replies = await r.zyb.sendAdmissionCallback(url, 'O-ZYB-1', 1);
        assert.deepEqual(replies.map((x) => [x.status, x.body]), [[500, 'failure'], [200, 'success']]);
        assert.equal(r.sink.seen.length, 1);
        assert.equal(await r.inboundCount(), 1);
        assert.equal(await r.sinkRows(), 1, 'the failed attempt wrote nothing');
        assert.equal(await metric(r.metrics, { supplier: 'zyb-1', type: 'admission', result: 'error' }), 1);

        // No module handles "order finished" in this rig: failure, nothing recorded, the supplier will repeat it.
        r.zyb.switches.callbackCopies = 1;
        const finished = await r.zyb.sendOrderFinishedCallback(url, 'O-ZYB-1');
        assert.deepEqual(finished.map((x) => [x.status, x.body]), [[503, 'failure']]);
        assert.equal(await r.inboundCount(), 1);
        assert.equal(await metric(r.metrics, { supplier: 'zyb-1', type: 'order_finished', result: 'unhandled' }), 1);
      });
    });
  });
}

describe('callback sink registry', () => {
  it('allows one handler per callback type', () => {
    const reg = new CallbackSinkRegistry().register({ onAdmission: async () => undefined });
    assert.throws(() => reg.register({ onAdmission: async () => undefined }), /already registered/);
    reg.register({ onRefundAudit: async () => undefined });
    assert.ok(reg.handlerFor('admission'));
    assert.ok(reg.handlerFor('refund_audit'));
    assert.equal(reg.handlerFor('order_finished'), undefined);
  });

  it('stores over-long dedup keys as a digest that fits the column', () => {
    assert.equal(storedDedupKey('short'), 'short');
    const long = storedDedupKey('k'.repeat(300));
    assert.ok(long.length <= 191);
    assert.notEqual(long, storedDedupKey('k'.repeat(299)));
  });
});
