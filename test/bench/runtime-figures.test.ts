import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { measureRuntime, parseMetrics } from '../../bench/runtime-figures';

/** A /metrics endpoint with prom-client's default metrics, as the gateway serves them. */
async function metricsServer(): Promise<{ server: Server; port: number }> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const server = createServer((_req, res) => {
    void registry.metrics().then((text) => res.end(text));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

test('parseMetrics reads samples with their labels and skips comments', () => {
  const samples = parseMetrics('# HELP x y\n# TYPE x gauge\nx 1.5\nnodejs_gc_duration_seconds_count{kind="major"} 3\n\n');
  assert.equal(samples.get('x'), 1.5);
  assert.equal(samples.get('nodejs_gc_duration_seconds_count{kind="major"}'), 3);
  assert.equal(samples.size, 2);
});

test('a blocked event loop shows in the window: its loop delay and its CPU', async () => {
  const { server, port } = await metricsServer();
  try {
    const { result, window } = await measureRuntime({ gatewayHttpPort: port, pids: { self: process.pid, gone: 2 ** 22 + 1 } }, async () => {
      // Garbage enough for young-generation collections, a few loop-monitor samples, then the loop (and a core)
      // held for 250 ms.
      let kept = 0;
      for (let i = 0; i < 200_000; i++) kept += new Array(64).fill(i).length;
      assert.equal(kept, 200_000 * 64);
      await new Promise((r) => setTimeout(r, 50));
      const until = Date.now() + 250;
      while (Date.now() < until) {
        /* busy */
      }
      await new Promise((r) => setTimeout(r, 50));
      return 'loaded';
    });
    assert.equal(result, 'loaded');
    assert.ok(window.loopDelayMaxMs >= 200, `loop delay max ${window.loopDelayMaxMs} ms`);
    assert.ok(window.loopDelayP99Ms <= window.loopDelayMaxMs);
    assert.ok((window.cpuCores['self'] ?? 0) > 0, 'CPU of this process counted');
    assert.equal(window.cpuCores['gone'], undefined, 'a process that does not exist reads as unknown');
    assert.ok(window.minorGcs.count > 0 && window.minorGcs.totalMs > 0, `young collections: ${JSON.stringify(window.minorGcs)}`);
    assert.ok(window.majorGcs.count >= 0 && window.majorGcs.totalMs >= 0);
  } finally {
    server.close();
  }
});
