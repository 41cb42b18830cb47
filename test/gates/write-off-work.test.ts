/**
 * Write-offs reaching Taobao through the spine: the real WorkRunner runs the `taobao.consume` / `taobao.reverse`
 * handlers with the real TopClient against the TopSimulator (a real HTTP server verifying signatures).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopClient } from '../../src/taobao/top-client';
import { WorkRunner } from '../../src/work/work-runner';
import { registerWriteOffWork } from '../../src/gates/write-off-work';
import { onSupplierAdmission } from '../../src/gates/admission-desk';
import { OrderEntity } from '../../src/persistence/entities/order.entity';
import { VoucherEntity } from '../../src/persistence/entities/voucher.entity';
import { WriteOffEntity } from '../../src/persistence/entities/write-off.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { OutboxEventEntity } from '../../src/persistence/entities/outbox-event.entity';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { TopSimulator } from '../support/top-simulator';
import { HOUR, startGateFixture, type GateFixture } from './gate-fixture';

const CREDS = { appKey: 'app1', appSecret: 'secret1', session: 'sess1', codemerchantId: 'cm1' };
const CONSUME = 'taobao.vmarket.eticket.consume';
const REVERSE = 'taobao.vmarket.eticket.reverse';

interface Env {
  f: GateFixture;
  sim: TopSimulator;
  top: TopClient;
  runner: WorkRunner;
  /** Runs due work until none is left (bounded), moving the clock past each retry delay. */
  drain(): Promise<void>;
  /** An order at the gateway and at the simulator, codes sent. */
  order(units: number, code: string): Promise<{ id: string; taobaoOrderId: string }>;
}

async function setup(): Promise<Env> {
  const f = await startGateFixture('sqlite');
  const sim = new TopSimulator({ ...CREDS, posids: ['POS_GATE-W'] });
  await sim.start();
  const top = new TopClient({ routerUrl: sim.url, ...CREDS, timeoutMs: 2000 });
  const runner = new WorkRunner({ db: f.tdb.db, clock: f.clock, backoffBaseMs: 10, backoffMaxMs: 10, maxAttempts: 10 });
  registerWriteOffWork(runner, { top, ambiguousLimit: 3, notFoundLimit: 2, products: f.products });
  let n = 0;
  return {
    f,
    sim,
    top,
    runner,
    async drain() {
      for (let i = 0; i < 40; i++) {
        const ran = await runner.runOnce();
        f.clock.t += 1000;
        if (ran === 0 && (await runner.runOnce()) === 0) return;
      }
      throw new Error('work did not drain');
    },
    async order(units, code) {
      const taobaoOrderId = String(4_000_000_000_000_000 + ++n);
      const o = await f.issueOrder({ units, code, taobaoOrderId });
      sim.addOrder({ orderId: taobaoOrderId, token: o.token, num: units });
      const sent = await top.send({ orderId: taobaoOrderId, verifyCodes: [{ code, num: units }], token: o.token });
      assert.equal(sent.kind, 'ok');
      return { id: o.id, taobaoOrderId };
    },
  };
}

async function teardown(env: Env): Promise<void> {
  await env.runner.stop(1000);
  await env.sim.stop();
  await env.f.stop();
}

async function state(env: Env, orderId: string) {
  return env.f.tdb.db.read(async (em) => {
    const o = await em.findOneByOrFail(OrderEntity, { id: orderId });
    const v = await em.findOneByOrFail(VoucherEntity, { orderId });
    const ws = await em.find(WriteOffEntity, { where: { orderId }, order: { admittedAt: 'ASC', id: 'ASC' } });
    const events = (await em.find(OutboxEventEntity, { where: { orderId }, order: { id: 'ASC' } })).map((e) => e.type);
    const exceptions = await em.find(OperatorExceptionEntity, { where: { orderId } });
    return { available: o.available, consumed: o.consumed, remaining: v.remaining, writeOffs: ws, events, exceptions };
  });
}

test('consume via the TopSimulator end to end: confirmed, then a gate reversal reaches Taobao', { timeout: 60_000 }, async () => {
  const env = await setup();
  try {
    const { f, sim } = env;
    const secret = await f.provision('GATE-W');
    const device = (await f.devices.authenticate('GATE-W', secret));
    assert.ok(device.ok);
    const o = await env.order(3, 'E2E3');
    const a = await f.desk.redeem(device.device, { kind: 'code', code: 'E2E3' }, 2, 'w1');
    assert.equal(a.reason, 'ADMITTED');
    assert.equal(sim.callsOf(CONSUME).length, 0, 'no Taobao call on the redeem path');
    await env.drain();
    const calls = sim.callsOf(CONSUME);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.params['posid'], 'POS_GATE-W');
    assert.equal(calls[0]!.params['consume_num'], '2');
    assert.equal(sim.order(o.taobaoOrderId).consumedTotal, 2);
    let s = await state(env, o.id);
    assert.equal(s.writeOffs[0]!.state, 'confirmed');
    assert.equal(calls[0]!.params['serial_num'], s.writeOffs[0]!.serialNum);
    assert.deepEqual(s.events, ['write-off.recorded', 'write-off.confirmed']);

    f.clock.t += HOUR;
    const r = await f.desk.reverse(device.device, a.writeOffId!, 2, 'turnstile');
    assert.equal(r.reason, 'ADMITTED');
    await env.drain();
    assert.equal(sim.callsOf(REVERSE).length, 1);
    assert.equal(sim.order(o.taobaoOrderId).consumedTotal, 0);
    s = await state(env, o.id);
    assert.deepEqual([s.available, s.consumed, s.remaining, s.writeOffs[0]!.state], [3, 0, 3, 'reversed']);
    assert.equal(await f.tdb.db.read((em) => em.countBy(WorkItemEntity, { status: 'done' })), 2);
  } finally {
    await teardown(env);
  }
});

test('consume terminal rejection: write-off failed, units restored, operator told', { timeout: 60_000 }, async () => {
  const env = await setup();
  try {
    const { f, sim } = env;
    const auth = await f.devices.authenticate('GATE-W', await f.provision('GATE-W'));
    assert.ok(auth.ok);
    const o = await env.order(2, 'TERM2');
    const a = await f.desk.redeem(auth.device, { kind: 'code', code: 'TERM2' }, 1, 't1');
    assert.equal(a.remaining, 1);
    sim.failNext(CONSUME, 1, 'isv.eticket-consume-error:code-not-available');
    await env.drain();
    const s = await state(env, o.id);
    assert.deepEqual([s.available, s.consumed, s.remaining, s.writeOffs[0]!.state], [2, 0, 2, 'failed']);
    assert.deepEqual(s.events, ['write-off.recorded', 'write-off.failed', 'exception.raised']);
    assert.equal(s.exceptions.length, 1);
    assert.equal(s.exceptions[0]!.kind, 'write_off_failed');
    assert.match(s.exceptions[0]!.detail, /code-not-available/);
    assert.equal(sim.order(o.taobaoOrderId).consumedTotal, 0);
    // The units are usable again at the gate.
    const again = await f.desk.redeem(auth.device, { kind: 'code', code: 'TERM2' }, 2, 't2');
    assert.equal(again.reason, 'ADMITTED');
  } finally {
    await teardown(env);
  }
});

test('consume outcome that stays unknown is reversed at Taobao, then the units are restored', { timeout: 60_000 }, async () => {
  const env = await setup();
  try {
    const { f, sim } = env;
    const auth = await f.devices.authenticate('GATE-W', await f.provision('GATE-W'));
    assert.ok(auth.ok);
    // Taobao applied the consume each time but the answer was lost (HTTP 500).
    const o = await env.order(2, 'UNK2');
    await f.desk.redeem(auth.device, { kind: 'code', code: 'UNK2' }, 1, 'u1');
    sim.http500Next(CONSUME, 3, { applyEffect: true });
    await env.drain();
    assert.equal(sim.callsOf(CONSUME).length, 3);
    assert.equal(sim.callsOf(REVERSE).length, 1);
    assert.equal(sim.order(o.taobaoOrderId).consumedTotal, 0);
    let s = await state(env, o.id);
    assert.deepEqual([s.available, s.consumed, s.remaining, s.writeOffs[0]!.state], [2, 0, 2, 'reversed']);
    assert.equal(s.exceptions[0]!.kind, 'write_off_consume_unknown');

    // Never reached Taobao at all: the reverse keeps answering "serial not found", so the consume never landed.
    const o2 = await env.order(1, 'UNK1');
    await f.desk.redeem(auth.device, { kind: 'code', code: 'UNK1' }, 1, 'u2');
    sim.http500Next(CONSUME, 3, { applyEffect: false });
    await env.drain();
    s = await state(env, o2.id);
    assert.deepEqual([s.available, s.consumed, s.remaining, s.writeOffs[0]!.state], [1, 0, 1, 'failed']);
    assert.equal(sim.order(o2.taobaoOrderId).consumedTotal, 0);
  } finally {
    await teardown(env);
  }
});

test('supplier-reported admission takes the same write-off path, once per callback', { timeout: 60_000 }, async () => {
  const env = await setup();
  try {
    const { f, sim } = env;
    await f.provision('GATE-W');
    const o = await env.order(3, 'SUP3');
    const deps = { instanceCode: 'sandbox', clock: f.clock, receivedAt: f.clock.now() };
    await f.tdb.db.transaction((em) => onSupplierAdmission(em, { ourOrderCode: o.id, dedupKey: 'chk-1', count: 2 }, deps));
    await f.tdb.db.transaction((em) => onSupplierAdmission(em, { ourOrderCode: o.id, dedupKey: 'chk-1', count: 2 }, deps));
    // The same callback processed again (its inbound dedup failed): the derived serial makes it a no-op at Taobao.
    await env.drain();
    let s = await state(env, o.id);
    assert.deepEqual([s.available, s.consumed, s.writeOffs.length, s.writeOffs[0]!.source, s.writeOffs[0]!.state], [1, 2, 1, 'supplier', 'confirmed']);
    assert.equal(sim.callsOf(CONSUME)[0]!.params['posid'], 'POS_GATE-W', 'the scenic spot device posid');
    // A running total of 5 used on a 3-unit order: 1 more is honoured, 2 are a conflict for operators.
    await f.tdb.db.transaction((em) => onSupplierAdmission(em, { supplierOrderId: undefined, ourOrderCode: o.id, dedupKey: 'chk-2', totalUsed: 5 }, deps));
    await env.drain();
    s = await state(env, o.id);
    assert.deepEqual([s.available, s.consumed], [0, 3]);
    assert.deepEqual(s.writeOffs.map((w) => [w.state, w.count]).sort(), [['confirmed', 1], ['confirmed', 2], ['conflict', 2]].sort());
    assert.equal(s.exceptions.filter((e) => e.kind === 'write_off_conflict').length, 1);
    assert.equal(sim.order(o.taobaoOrderId).consumedTotal, 3);
  } finally {
    await teardown(env);
  }
});
