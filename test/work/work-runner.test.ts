import assert from 'node:assert/strict';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { describe, it } from 'node:test';
import { BreakerRegistry, type BreakerState } from '../../src/breakers/breaker-registry';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { workAdminServiceHandlers } from '../../src/grpc/work-admin-service';
import {
  WorkAdminServiceClient,
  WorkAdminServiceService,
  WorkStatus,
  AbandonWorkRequest,
  ListParkedWorkRequest,
  ReplayWorkRequest,
  type ListParkedWorkResponse,
  type ReplayWorkResponse,
  type AbandonWorkResponse,
} from '../../src/gen/ticketgateway/admin/v1/work_admin';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { listOrderEvents } from '../../src/outbox/outbox';
import type { Database } from '../../src/persistence/database';
import { OperatorExceptionEntity } from '../../src/persistence/entities/operator-exception.entity';
import { WorkItemEntity } from '../../src/persistence/entities/work-item.entity';
import { abandonWork, listParkedWork, replayWork } from '../../src/work/work-admin';
import { enqueueWork, findWorkItem, InvalidWorkError } from '../../src/work/work-queue';
import { WorkRunner, type WorkContext, type WorkOutcome, type WorkRunnerOptions } from '../../src/work/work-runner';
import { sleep, waitFor } from '../support/wait';
import { fileScope } from '../support/database';
import { unary } from '../support/grpc-clients';
import { startEffectsServer, type EffectsServer } from './effects-server';

const { cleanups, database } = fileScope();

async function server(): Promise<EffectsServer> {
  const s = await startEffectsServer();
  cleanups.push(() => s.close());
  return s;
}

function runner(opts: WorkRunnerOptions): WorkRunner {
  const r = new WorkRunner({ pollIntervalMs: 10, backoffBaseMs: 20, backoffMaxMs: 50, ...opts });
  cleanups.push(() => r.stop(0));
  return r;
}

interface EffectPayload {
  orderId: string | null;
  seq: number;
  note?: string;
}

/** The outside call a real handler makes: the idempotency key travels with the request. */
async function callUpstream(url: string, ctx: WorkContext<EffectPayload>): Promise<WorkOutcome> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': ctx.item.idempotencyKey },
    body: JSON.stringify({ orderId: ctx.payload.orderId, seq: ctx.payload.seq }),
    signal: ctx.signal,
  });
  const body = (await res.json()) as { error?: string };
  if (res.status >= 500) return { outcome: 'retry', error: `upstream answered HTTP ${res.status}` };
  if (body.error) return { outcome: 'park', error: `upstream refused: ${body.error}${ctx.payload.note ? ` (${ctx.payload.note})` : ''}` };
  return { outcome: 'done' };
}

async function enqueue(db: Database, orderId: string | null, seq: number, upstream = 'supplier:zyb', extra: Partial<EffectPayload> = {}): Promise<number> {
  const key = `effect:${orderId ?? 'none'}:${seq}`;
  const r = await db.transaction((em) => enqueueWork(em, { idempotencyKey: key, orderId, kind: 'test.effect', upstream, payload: { orderId, seq, ...extra } }));
  return r.id;
}

async function items(db: Database): Promise<WorkItemEntity[]> {
  return db.read((em) => em.find(WorkItemEntity, { order: { id: 'ASC' } }));
}


describe('enqueueWork', () => {
  for (const kind of ['sqlite', 'mysql'] as const) {
    it(`writes in the caller's transaction; a duplicate idempotency key is a no-op (${kind})`, async () => {
      const { db } = await database(kind);
      const input = { idempotencyKey: 'taobao.send:o_1:1', orderId: 'o_1', kind: 'taobao.send', upstream: 'taobao', payload: { codes: 2 } };
      await assert.rejects(
        db.transaction(async (em) => {
          await enqueueWork(em, input);
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      assert.equal((await items(db)).length, 0);

      const first = await db.transaction((em) => enqueueWork(em, input));
      assert.equal(first.enqueued, true);
      const again = await db.transaction((em) => enqueueWork(em, { ...input, payload: { codes: 3 } }));
      assert.deepEqual(again, { enqueued: false, id: first.id });
      // Two transactions racing on one key: one row, no error.
      const raced = await Promise.all([1, 2, 3].map(() => db.transaction((em) => enqueueWork(em, { ...input, idempotencyKey: 'race' }))));
      assert.equal(new Set(raced.map((r) => r.id)).size, 1);
      const rows = await items(db);
      assert.equal(rows.length, 2);
      assert.equal(rows[0]!.payload, '{"codes":2}');
      assert.equal(rows[0]!.status, 'pending');
      await assert.rejects(db.transaction((em) => enqueueWork(em, { ...input, idempotencyKey: '' })), InvalidWorkError);
    });
  }
});

describe('WorkRunner', () => {
  it('two runners on one MariaDB do each item once, one at a time and in order per order (mysql)', async () => {
    const { db, reopen } = await database('mysql');
    const other = await reopen({ runMigrations: false });
    cleanups.push(() => other.close());
    const s = await server();
    s.delayMs = 5;
    const orders = ['o_1', 'o_2', 'o_3', 'o_4', 'o_5'];
    for (let seq = 1; seq <= 6; seq++) for (const o of orders) await enqueue(db, o, seq);
    const done = [0, 0];
    const runners = [db, other].map((d, i) =>
      runner({ db: d, concurrency: 3, onOutcome: (_item, outcome) => outcome === 'done' && done[i]!++ }).register('test.effect', (ctx: WorkContext<EffectPayload>) => callUpstream(s.url, ctx)),
    );
    for (const r of runners) r.start();
    await waitFor('all done', async () => (await items(db)).every((w) => w.status === 'done'));
    await Promise.all(runners.map((r) => r.stop()));

    assert.equal(s.requests.length, 30, 'no item ran twice');
    assert.equal(new Set(s.requests.map((q) => q.key)).size, 30);
    assert.deepEqual(s.overlaps, [], 'never two calls of one order at once');
    for (const o of orders) {
      const seqs = s.requests.filter((q) => q.body.orderId === o).map((q) => q.body.seq);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6], `order ${o} in order`);
    }
    assert.ok(done[0]! > 0 && done[1]! > 0, `both runners worked (${done.join('/')})`);
    assert.ok((await items(db)).every((w) => w.attempts === 1 && w.leaseOwner === null));
  });

  it('re-runs the call of a worker that died between call and record, with the same key: one effect (mysql)', async () => {
    const { db, reopen } = await database('mysql');
    const other = await reopen({ runMigrations: false });
    cleanups.push(() => other.close());
    const s = await server();
    const id = await enqueue(db, 'o_crash', 1);
    let releaseFirst!: () => void;
    const firstMayFinish = new Promise<void>((r) => (releaseFirst = r));
    cleanups.push(() => releaseFirst());
    const handler = async (ctx: WorkContext<EffectPayload>): Promise<WorkOutcome> => {
      const outcome = await callUpstream(s.url, ctx);
      if (ctx.attempt === 1) await firstMayFinish; // the worker "dies" here: the call happened, nothing recorded
      return outcome;
    };
    const outcomesA: string[] = [];
    const a = runner({ db, leaseMs: 400, onOutcome: (_i, o) => outcomesA.push(o) }).register('test.effect', handler);
    a.start();
    await waitFor('the first call', () => s.effects.length === 1);
    await a.stop(0); // gives up on the running item without recording it
    const stuck = await findWorkItem(db, id);
    assert.equal(stuck?.status, 'in_flight');
    assert.equal(stuck?.attempts, 1);

    const b = runner({ db: other, leaseMs: 5_000 }).register('test.effect', handler);
    b.start();
    await waitFor('the second runner to finish it', async () => (await findWorkItem(db, id))?.status === 'done');
    assert.deepEqual(
      s.requests.map((q) => q.key),
      ['effect:o_crash:1', 'effect:o_crash:1'],
      'the call was repeated with the same idempotency key',
    );
    assert.deepEqual(s.effects, ['effect:o_crash:1'], 'the effect happened once');
    assert.equal((await findWorkItem(db, id))?.attempts, 2);

    // The first worker's call finally returns: it must not record anything.
    releaseFirst();
    await sleep(100);
    assert.deepEqual(outcomesA, []);
    assert.equal((await findWorkItem(db, id))?.status, 'done');
    await b.stop();
  });

  it('waits without burning attempts while the upstream breaker is open, then resumes (mysql)', async () => {
    const { db } = await database('mysql');
    const s = await server();
    s.mode = 'fail';
    const breakers = new BreakerRegistry({ defaults: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 300, timeoutMs: 2_000 } });
    cleanups.push(() => breakers.shutdown());
    const states: BreakerState[] = [];
    breakers.onStateChange((upstream, st) => upstream === 'supplier:zyb' && states.push(st));
    for (let i = 1; i <= 6; i++) await enqueue(db, `o_b${i}`, 1);
    await enqueue(db, 'o_other', 1, 'taobao'); // a healthy upstream keeps working meanwhile
    const maxAttempts = 4;
    const make = () =>
      runner({ db, breakers, maxAttempts, breakerRecheckMs: 30, concurrency: 4 }).register('test.effect', (ctx: WorkContext<EffectPayload>) =>
        ctx.item.upstream === 'taobao' ? Promise.resolve({ outcome: 'done' } as const) : callUpstream(s.url, ctx),
      );
    const first = make();
    first.start();
    await waitFor('the breaker to open', () => breakers.state('supplier:zyb') === 'open');
    await sleep(1_000); // several reset cycles: each half-open probe fails and re-opens
    await first.stop();

    const rows = await items(db);
    const zyb = rows.filter((w) => w.upstream === 'supplier:zyb');
    assert.equal(rows.find((w) => w.upstream === 'taobao')?.status, 'done');
    assert.ok(zyb.every((w) => w.status === 'pending'), 'nothing parked while the breaker protected the upstream');
    const attempts = zyb.reduce((n, w) => n + w.attempts, 0);
    const probes = states.filter((x) => x === 'half_open').length;
    assert.ok(probes >= 2 && states.filter((x) => x === 'open').length === probes + 1, `probed and re-opened: ${states.join(',')}`);
    // One wave of calls before it opened, then one call per half-open probe: nothing else reached the upstream.
    assert.ok(s.requests.length <= 4 + probes, `the breaker held the calls back (${s.requests.length} calls, ${probes} probes)`);
    // Failures that found the upstream down (the one that tripped it, failed probes) are not charged to the items.
    assert.ok(attempts <= s.requests.length - 1 - probes, `attempts charged: ${attempts} of ${s.requests.length} calls`);
    assert.ok(zyb.every((w) => w.attempts < maxAttempts - 1));

    s.mode = 'ok';
    const second = make();
    second.start();
    await waitFor('recovery', async () => (await items(db)).every((w) => w.status === 'done'), 10_000);
    await second.stop();
    assert.equal(breakers.state('supplier:zyb'), 'closed');
    assert.deepEqual(new Set(s.effects), new Set(zyb.map((w) => w.idempotencyKey)));
  });

  it('parks a poison item with an operator exception, holds its order, and is replayed / abandoned over gRPC (sqlite)', async () => {
    const { db } = await database('sqlite');
    const s = await server();
    const flaky = await server();
    s.mode = 'refuse';
    flaky.mode = 'fail';
    const poison = await enqueue(db, 'o_p', 1, 'supplier:lh', { note: 'visitor 13812345678' });
    const resend = await enqueue(db, 'o_p', 2, 'supplier:lh');
    const unrelated = await enqueue(db, null, 1, 'supplier:zyb');
    const r = runner({ db, maxAttempts: 2 }).register('test.effect', (ctx: WorkContext<EffectPayload>) =>
      callUpstream(ctx.item.upstream === 'supplier:zyb' ? flaky.url : s.url, ctx),
    );
    r.start();
    await waitFor('both parked', async () => (await listParkedWork(db)).items.length === 2);
    await sleep(100);
    await r.stop();

    const parked = await findWorkItem(db, poison);
    assert.equal(parked?.status, 'parked');
    assert.equal(parked?.attempts, 1, 'a terminal refusal parks at once');
    assert.match(parked!.lastError!, /CODE_ALREADY_USED/);
    assert.doesNotMatch(parked!.lastError!, /13812345678/, 'no mobile number in clear');
    const gaveUp = await findWorkItem(db, unrelated);
    assert.equal(gaveUp?.status, 'parked');
    assert.equal(gaveUp?.attempts, 2);
    assert.match(gaveUp!.lastError!, /gave up after 2 attempts: upstream answered HTTP 503/);
    const waiting = await findWorkItem(db, resend);
    assert.equal(waiting?.status, 'pending');
    assert.equal(waiting?.attempts, 0, 'the resend never overtook its parked send');
    assert.deepEqual(s.requests.map((q) => q.key), ['effect:o_p:1']);

    const exceptions = await db.read((em) => em.find(OperatorExceptionEntity, { order: { id: 'ASC' } }));
    assert.equal(exceptions.length, 2);
    const forOrder = exceptions.find((e) => e.orderId === 'o_p')!;
    assert.equal(forOrder.kind, 'work_parked');
    assert.match(forOrder.detail, new RegExp(`^work_item=${poison};`));
    assert.doesNotMatch(forOrder.detail, /13812345678/);
    assert.equal(forOrder.resolvedAt, null);
    const events = await db.read((em) => listOrderEvents(em, 'o_p'));
    assert.deepEqual(events.map((e) => e.type), ['exception.raised']);
    assert.equal(events[0]!.event.exceptionRaised?.workItemId, String(poison));

    // Operators act over gRPC.
    const grpc = new GrpcServer(createLogger('silent'), new GatewayMetrics({ defaultMetrics: false }));
    grpc.addService(WorkAdminServiceService, workAdminServiceHandlers({ db, clock: { now: () => Date.now() } }));
    const port = await grpc.listen(0, '127.0.0.1');
    cleanups.push(() => grpc.close(0));
    const client = new WorkAdminServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    cleanups.push(() => client.close());

    const page1 = await unary<object, ListParkedWorkResponse>(client, 'listParkedWork', ListParkedWorkRequest.fromPartial({ pageSize: 1 }));
    assert.deepEqual(page1.items.map((i) => i.id), [String(poison)]);
    assert.equal(page1.items[0]!.status, WorkStatus.WORK_STATUS_PARKED);
    assert.equal(page1.items[0]!.orderId, 'o_p');
    const page2 = await unary<object, ListParkedWorkResponse>(client, 'listParkedWork', ListParkedWorkRequest.fromPartial({ pageSize: 1, pageToken: page1.nextPageToken }));
    assert.deepEqual(page2.items.map((i) => i.id), [String(unrelated)]);
    assert.equal(page2.nextPageToken, '');

    await assert.rejects(unary(client, 'replayWork', ReplayWorkRequest.fromPartial({ id: String(resend) })), (e: ServiceError) => e.code === status.FAILED_PRECONDITION);
    await assert.rejects(unary(client, 'replayWork', ReplayWorkRequest.fromPartial({ id: '999999' })), (e: ServiceError) => e.code === status.NOT_FOUND);
    await assert.rejects(unary(client, 'listParkedWork', ListParkedWorkRequest.fromPartial({ pageToken: 'bogus' })), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);
    await assert.rejects(unary(client, 'abandonWork', AbandonWorkRequest.fromPartial({ id: String(unrelated), reason: ' ' })), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);

    s.mode = 'ok'; // the supplier fixed its side
    const replayed = await unary<object, ReplayWorkResponse>(client, 'replayWork', ReplayWorkRequest.fromPartial({ id: String(poison) }));
    assert.equal(replayed.item?.status, WorkStatus.WORK_STATUS_PENDING);
    assert.equal(replayed.item?.attempts, 0);
    const abandoned = await unary<object, AbandonWorkResponse>(client, 'abandonWork', AbandonWorkRequest.fromPartial({ id: String(unrelated), reason: 'supplier confirmed by phone' }));
    assert.equal(abandoned.item?.status, WorkStatus.WORK_STATUS_ABANDONED);
    assert.equal(abandoned.item?.lastError, 'abandoned by operator: supplier confirmed by phone');
    await assert.rejects(unary(client, 'abandonWork', AbandonWorkRequest.fromPartial({ id: String(unrelated), reason: 'again' })), (e: ServiceError) => e.code === status.FAILED_PRECONDITION);
    assert.deepEqual((await listParkedWork(db)).items, []);
    const resolved = await db.read((em) => em.find(OperatorExceptionEntity));
    assert.ok(resolved.every((e) => e.resolvedAt !== null), 'replay and abandon resolve the operator exceptions');

    const again = runner({ db }).register('test.effect', (ctx: WorkContext<EffectPayload>) => callUpstream(s.url, ctx));
    again.start();
    await waitFor('the order to finish', async () => (await findWorkItem(db, resend))?.status === 'done');
    await again.stop();
    assert.equal((await findWorkItem(db, poison))?.status, 'done');
    assert.deepEqual(s.requests.map((q) => q.key), ['effect:o_p:1', 'effect:o_p:1', 'effect:o_p:2'], 'send replayed, then its resend');
    assert.equal((await findWorkItem(db, unrelated))?.status, 'abandoned');
  });

  it('admin functions refuse what is not theirs to change (sqlite)', async () => {
    const { db } = await database('sqlite');
    const id = await enqueue(db, 'o_x', 1);
    assert.deepEqual(await replayWork(db, id), { ok: false, reason: 'wrong_status', status: 'pending' });
    assert.deepEqual(await replayWork(db, id + 100), { ok: false, reason: 'not_found' });
    const abandoned = await abandonWork(db, id, 'duplicate order');
    assert.equal(abandoned.ok && abandoned.item.status, 'abandoned');
    await db.transaction((em) => em.update(WorkItemEntity, { id }, { status: 'in_flight' }));
    assert.deepEqual(await abandonWork(db, id, 'x'), { ok: false, reason: 'wrong_status', status: 'in_flight' });
  });
});
