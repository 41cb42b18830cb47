/**
 * Caller authentication at the gRPC edge of a whole Gateway: with SERVICE_TOKENS set, OrderService and admin
 * calls need `authorization: Bearer <token>` (UNAUTHENTICATED with ErrorInfo otherwise); gate services keep
 * their device auth; health stays open; every call is logged with its caller and never with the token.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { Gateway } from '../../src/app';
import { ConfigError, loadConfig } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { CallerAuthenticator, parseServiceTokenList, sha256Hex, ServiceTokenError } from '../../src/grpc/caller-auth';
import { errorInfoOf } from '../../src/grpc/grpc-errors';
import { GetOrderRequest } from '../../src/gen/ticketgateway/orders/v1/orders';
import { ListParkedWorkRequest, WorkAdminServiceClient } from '../../src/gen/ticketgateway/admin/v1/work_admin';
import { AdmissionServiceClient, CheckRequest } from '../../src/gen/ticketgateway/gates/v1/gates';
import { healthCheck, orderClient, unary } from '../support/grpc-clients';

const BILLING_TOKEN = 'billing-token-0123456789abcdef';
const CRM_TOKEN = 'crm-token-fedcba9876543210';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) {
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { lines, raw, log: createLogger('info', stream as unknown as import('pino').DestinationStream) };
}

function bearer(token: string): Metadata {
  const m = new Metadata();
  m.set('authorization', `Bearer ${token}`);
  return m;
}

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  assert.fail('the call was expected to fail');
}

function baseEnv(dir: string): Record<string, string> {
  return { DATA_DIR: dir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0' };
}

test('token lists parse; bad entries are refused; bearer tokens are checked against the hashes', () => {
  const map = parseServiceTokenList(`billing:${sha256Hex(BILLING_TOKEN)}, crm:${sha256Hex(CRM_TOKEN).toUpperCase()}`);
  assert.deepEqual([...map.keys()], ['billing', 'crm']);
  assert.throws(() => parseServiceTokenList('billing'), ServiceTokenError);
  assert.throws(() => parseServiceTokenList(`billing:${BILLING_TOKEN}`), /64 hex digits/);
  assert.throws(() => parseServiceTokenList(`a:${sha256Hex('x')},a:${sha256Hex('y')}`), /twice/);
  const auth = new CallerAuthenticator(map);
  assert.deepEqual(auth.check(bearer(BILLING_TOKEN)), { ok: true, caller: 'billing' });
  assert.deepEqual(auth.check(bearer(CRM_TOKEN)), { ok: true, caller: 'crm' });
  assert.deepEqual(auth.check(bearer('not-a-known-token-at-all')), { ok: false, problem: 'unknown' });
  assert.deepEqual(auth.check(new Metadata()), { ok: false, problem: 'missing' });
  const basic = new Metadata();
  basic.set('authorization', `Basic ${BILLING_TOKEN}`);
  assert.deepEqual(auth.check(basic), { ok: false, problem: 'malformed' });
  assert.deepEqual(new CallerAuthenticator(new Map()).check(new Metadata()), { ok: true, caller: 'anonymous' });
});

test('a bad SERVICE_TOKENS stops start-up with a ConfigError naming the key, not the value', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'caller-auth-'));
  try {
    await assert.rejects(
      Gateway.start({ config: loadConfig({ ...baseEnv(dir), SERVICE_TOKENS: `billing:${BILLING_TOKEN}` }), logger: createLogger('silent'), defaultMetrics: false }),
      (e: Error) => e instanceof ConfigError && e.key === 'SERVICE_TOKENS' && !e.message.includes(BILLING_TOKEN),
    );
    const file = join(dir, 'tokens.json');
    writeFileSync(file, '["not an object"]');
    await assert.rejects(
      Gateway.start({ config: loadConfig({ ...baseEnv(dir), SERVICE_TOKENS_FILE: file }), logger: createLogger('silent'), defaultMetrics: false }),
      (e: Error) => e instanceof ConfigError && e.key === 'SERVICE_TOKENS_FILE',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with service tokens: orders and admin need a valid bearer token; gates and health do not; calls are logged by caller', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'caller-auth-'));
  const file = join(dir, 'tokens.json');
  writeFileSync(file, JSON.stringify({ crm: sha256Hex(CRM_TOKEN) }));
  const { lines, raw, log } = capture();
  const gateway = await Gateway.start({
    config: loadConfig({ ...baseEnv(dir), SERVICE_TOKENS: `billing:${sha256Hex(BILLING_TOKEN)}`, SERVICE_TOKENS_FILE: file }),
    logger: log,
    defaultMetrics: false,
  });
  const clients: Client[] = [];
  try {
    const orders = orderClient(gateway.grpcPort);
    const admin = new WorkAdminServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
    const gates = new AdmissionServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
    clients.push(orders, admin, gates);
    const getOrder = (md?: Metadata) => unary(orders, 'getOrder', GetOrderRequest.fromPartial({ id: 'o_none' }), md);

    for (const md of [undefined, bearer('wrong-token-0123456789'), (() => { const m = new Metadata(); m.set('authorization', BILLING_TOKEN); return m; })()]) {
      const e = await failure(getOrder(md));
      assert.equal(e.code, status.UNAUTHENTICATED, e.details);
      assert.equal(errorInfoOf(e)?.reason, 'CALLER_NOT_AUTHENTICATED');
    }
    // Authenticated: the call reaches the handler (the order does not exist).
    assert.equal((await failure(getOrder(bearer(BILLING_TOKEN)))).code, status.NOT_FOUND);
    assert.equal((await failure(getOrder(bearer(CRM_TOKEN)))).code, status.NOT_FOUND, 'tokens from the file count too');

    assert.equal((await failure(unary(admin, 'listParkedWork', ListParkedWorkRequest.fromPartial({})))).code, status.UNAUTHENTICATED);
    await unary(admin, 'listParkedWork', ListParkedWorkRequest.fromPartial({}), bearer(CRM_TOKEN));

    // Gate devices are not service callers: their own auth answers.
    const gate = await failure(unary(gates, 'check', CheckRequest.fromPartial({ presented: { voucherCode: 'X1' } })));
    assert.equal(gate.code, status.UNAUTHENTICATED);
    assert.equal(errorInfoOf(gate)?.reason, 'DEVICE_NOT_AUTHENTICATED');

    assert.equal(await healthCheck(gateway.grpcPort), 'SERVING');

    const calls = lines.filter((l) => l.msg === 'gRPC call' || l.msg === 'gRPC call refused');
    const byCaller = (c: string) => calls.filter((l) => l.caller === c).map((l) => `${l.rpc}:${l.grpcCode}`);
    assert.deepEqual(byCaller('billing'), ['GetOrder:NOT_FOUND']);
    assert.deepEqual(byCaller('crm'), ['GetOrder:NOT_FOUND', 'ListParkedWork:OK']);
    assert.deepEqual(byCaller('unauthenticated'), ['GetOrder:UNAUTHENTICATED', 'GetOrder:UNAUTHENTICATED', 'GetOrder:UNAUTHENTICATED', 'ListParkedWork:UNAUTHENTICATED']);
    assert.deepEqual(byCaller('device:unknown'), ['Check:UNAUTHENTICATED']);
    assert.ok(calls.every((l) => typeof l.requestId === 'string' && typeof l.durationMs === 'number'));
    for (const l of raw) {
      assert.ok(!l.includes(BILLING_TOKEN) && !l.includes(CRM_TOKEN), 'no token in the logs');
    }
  } finally {
    for (const c of clients) c.close();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without service tokens: calls are open, logged as anonymous, and start-up warns', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'caller-auth-'));
  const { lines, log } = capture();
  const gateway = await Gateway.start({ config: loadConfig(baseEnv(dir)), logger: log, defaultMetrics: false });
  const orders = orderClient(gateway.grpcPort);
  try {
    assert.ok(lines.some((l) => l.level === 'warn' && /SERVICE_TOKENS is not set/.test(String(l.msg))));
    assert.equal((await failure(unary(orders, 'getOrder', GetOrderRequest.fromPartial({ id: 'o_none' })))).code, status.NOT_FOUND);
    assert.ok(lines.some((l) => l.msg === 'gRPC call' && l.caller === 'anonymous' && l.rpc === 'GetOrder'));
  } finally {
    orders.close();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
