import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  BreakerOpenError,
  BreakerRegistry,
  BusinessRejectionError,
  UpstreamTimeoutError,
  type BreakerState,
} from '../../src/breakers/breaker-registry';
import { startEffectsServer, type EffectsServer } from '../work/effects-server';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function server(): Promise<EffectsServer> {
  const s = await startEffectsServer();
  cleanups.push(() => s.close());
  // One answered call first: loading fetch and connecting can take longer than the short timeouts under test.
  await post(s.url, 'warm-up', AbortSignal.timeout(5_000));
  s.requests.length = 0;
  s.effects.length = 0;
  return s;
}

function registry(opts: ConstructorParameters<typeof BreakerRegistry>[0]): BreakerRegistry {
  const r = new BreakerRegistry(opts);
  cleanups.push(() => r.shutdown());
  return r;
}

/** The outside call as an adapter would make it: business refusals become BusinessRejectionError. */
async function post(url: string, key: string, signal: AbortSignal): Promise<unknown> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify({ key }), headers: { 'idempotency-key': key, 'content-type': 'application/json' }, signal });
  const body = (await res.json()) as { error?: string };
  if (res.status >= 500) throw new Error(`upstream answered HTTP ${res.status}`);
  if (body.error) throw new BusinessRejectionError(`upstream refused: ${body.error}`, body.error);
  return body;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('BreakerRegistry', () => {
  it('aborts a call that exceeds the timeout: the upstream sees the request torn down', async () => {
    const s = await server();
    s.mode = 'hang';
    const r = registry({ defaults: { timeoutMs: 150 } });
    const started = Date.now();
    await assert.rejects(r.call('supplier:zyb', (signal) => post(s.url, 'k1', signal)), (err: unknown) => {
      assert.ok(err instanceof UpstreamTimeoutError);
      assert.equal(err.upstream, 'supplier:zyb');
      return true;
    });
    assert.ok(Date.now() - started < 1_000, 'failed fast at the timeout');
    await waitFor('the server to see the abort', () => s.aborted === 1);
  });

  it("aborts before the caller's deadline when that is tighter than the breaker timeout", async () => {
    const s = await server();
    s.mode = 'hang';
    const r = registry({ defaults: { timeoutMs: 5_000 } });
    const started = Date.now();
    await assert.rejects(r.call('taobao', (signal) => post(s.url, 'k2', signal), { deadline: Date.now() + 300 }), UpstreamTimeoutError);
    const took = Date.now() - started;
    assert.ok(took < 300 && took >= 200, `aborted shortly before the deadline (${took} ms)`);
    await waitFor('the server to see the abort', () => s.aborted === 1);
  });

  it('ignores business rejections, opens on faults, fails fast while open, and closes after a half-open probe', async () => {
    const s = await server();
    const r = registry({ defaults: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 300, timeoutMs: 1_000 } });
    const changes: Array<[string, BreakerState]> = [];
    r.onStateChange((upstream, state) => changes.push([upstream, state]));

    s.mode = 'refuse';
    for (let i = 0; i < 6; i++) {
      await assert.rejects(r.call('supplier:lh', (signal) => post(s.url, `r${i}`, signal)), BusinessRejectionError);
    }
    assert.equal(r.state('supplier:lh'), 'closed', 'refusals are answers, not faults');

    s.mode = 'fail';
    // Refusals count as calls, so the failure rate passes 50% on the 7th fault.
    let faults = 0;
    for (; faults < 20 && r.state('supplier:lh') === 'closed'; faults++) {
      await assert.rejects(r.call('supplier:lh', (signal) => post(s.url, `f${faults}`, signal)), /HTTP 503/);
    }
    assert.equal(r.state('supplier:lh'), 'open');
    assert.equal(faults, 7);
    assert.deepEqual(r.openUpstreams(), ['supplier:lh']);
    const seen = s.requests.length;
    await assert.rejects(r.call('supplier:lh', (signal) => post(s.url, 'blocked', signal)), BreakerOpenError);
    assert.equal(s.requests.length, seen, 'an open breaker does not call the upstream');
    // Another upstream has its own breaker.
    assert.deepEqual(await r.call('taobao', async () => 'fine'), 'fine');
    assert.deepEqual(r.states(), { 'supplier:lh': 'open', taobao: 'closed' });

    await waitFor('half-open', () => r.state('supplier:lh') === 'half_open', 2_000);
    s.mode = 'ok';
    assert.deepEqual(await r.call('supplier:lh', (signal) => post(s.url, 'probe', signal)), { ok: true, key: 'probe' });
    assert.equal(r.state('supplier:lh'), 'closed');
    assert.deepEqual(
      changes.filter(([u]) => u === 'supplier:lh').map(([, st]) => st),
      ['open', 'half_open', 'closed'],
    );
  });

  it('lets exactly one probe through while half-open; a failed probe re-opens', async () => {
    const s = await server();
    const r = registry({ defaults: { volumeThreshold: 1, resetTimeoutMs: 200, timeoutMs: 1_000 } });
    s.mode = 'fail';
    await assert.rejects(r.call('taobao', (signal) => post(s.url, 'x', signal)));
    assert.equal(r.state('taobao'), 'open');
    await waitFor('half-open', () => r.state('taobao') === 'half_open', 2_000);
    s.delayMs = 100;
    const results = await Promise.allSettled([0, 1, 2].map((i) => r.call('taobao', (signal) => post(s.url, `p${i}`, signal))));
    assert.equal(results.filter((x) => x.status === 'rejected' && x.reason instanceof BreakerOpenError).length, 2);
    assert.equal(s.requests.filter((q) => q.key.startsWith('p')).length, 1, 'one probe reached the upstream');
    assert.equal(r.state('taobao'), 'open', 'the failed probe re-opened the breaker');
  });

  it("does not count a call the caller cancelled against the upstream", async () => {
    const s = await server();
    s.mode = 'hang';
    const r = registry({ defaults: { volumeThreshold: 1, timeoutMs: 5_000 } });
    const controller = new AbortController();
    const call = r.call('supplier:zyb', (signal) => post(s.url, 'c', signal), { signal: controller.signal });
    await waitFor('the request to arrive', () => s.requests.length === 1);
    controller.abort(new Error('shutting down'));
    await assert.rejects(call);
    assert.equal(r.state('supplier:zyb'), 'closed');
    await waitFor('the server to see the abort', () => s.aborted === 1);
  });
});
