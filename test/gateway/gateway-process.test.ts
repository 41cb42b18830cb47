/**
 * The gateway as an operator runs it: a real process on the embedded default, no servers configured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { healthCheck, orderClient, unary } from '../support/grpc-clients';

const root = join(__dirname, '..', '..');

function startProcess(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('starts on embedded SQLite with no servers, answers health and NOT_FOUND, exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-proc-'));
  const proc = startProcess({ DATA_DIR: dataDir, GRPC_PORT: '0', HTTP_PORT: '0', GRPC_HOST: '127.0.0.1', HTTP_HOST: '127.0.0.1' });
  try {
    const started = await waitFor('the start-up log line', () => {
      const line = proc.output().split('\n').find((l) => l.includes('ticket-gateway started'));
      return line ? (JSON.parse(line) as { grpcPort: number; httpPort: number; database: string }) : undefined;
    }, 30_000);
    assert.equal(started.database, 'sqlite');
    assert.ok(existsSync(join(dataDir, 'ticket-gateway.sqlite')), 'the SQLite file is created under DATA_DIR');

    assert.equal(await healthCheck(started.grpcPort), 'SERVING');
    assert.equal(await healthCheck(started.grpcPort, 'ticketgateway.orders.v1.OrderService'), 'SERVING');

    const client = orderClient(started.grpcPort);
    await assert.rejects(unary(client, 'getOrder', { id: 'o_does_not_exist' }), (err: { code: number; details: string }) => {
      assert.equal(err.code, status.NOT_FOUND);
      assert.match(err.details, /order "o_does_not_exist" not found/);
      return true;
    });
    client.close();

    const ready = await fetch(`http://127.0.0.1:${started.httpPort}/readyz`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${started.httpPort}/metrics`)).text();
    assert.match(metrics, /grpc_server_handled_total\{[^}]*grpc_method="GetOrder"[^}]*grpc_code="NOT_FOUND"[^}]*\} 1/);

    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.output());
    assert.match(proc.output(), /ticket-gateway stopped/);
  } finally {
    proc.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

for (const [key, value, expected] of [
  ['DATABASE_URL', 'nonsense', /^ticket-gateway: configuration error: DATABASE_URL must be a mysql:\/\//],
  ['GRPC_PORT', '70000', /^ticket-gateway: configuration error: GRPC_PORT /],
  ['LOG_LEVEL', 'loud', /^ticket-gateway: configuration error: LOG_LEVEL /],
  ['KAFKA_BROKERS', 'not a broker', /^ticket-gateway: configuration error: KAFKA_BROKERS must be a comma-separated list of host:port/],
] as const) {
  test(`bad configuration ${key}=${value} stops start-up with one line naming the key`, { timeout: 30_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tg-badcfg-'));
    const proc = startProcess({ DATA_DIR: dataDir, GRPC_PORT: '0', HTTP_PORT: '0', [key]: value });
    try {
      assert.equal(await proc.exited, 78);
      const lines = proc.output().trim().split('\n');
      assert.equal(lines.length, 1, proc.output());
      assert.match(lines[0]!, expected);
      assert.ok(!existsSync(join(dataDir, 'ticket-gateway.sqlite')), 'nothing was created');
    } finally {
      proc.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
