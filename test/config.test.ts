import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, configSchema, loadConfig } from '../src/config';
import { resolvePersonalDataKey } from '../src/app';

test('defaults give the embedded mode: no database URL, no brokers, documented ports', () => {
  const c = loadConfig({});
  assert.equal(c.DATABASE_URL, undefined);
  assert.equal(c.KAFKA_BROKERS, undefined);
  assert.equal(c.DATA_DIR, './data');
  assert.equal(c.GRPC_PORT, 50051);
  assert.equal(c.HTTP_PORT, 8080);
  assert.equal(c.LOG_LEVEL, 'info');
});

test('values are parsed and typed; empty variables count as unset', () => {
  const c = loadConfig({ GRPC_PORT: '6000', KAFKA_BROKERS: 'a:9092, b:9093', DATABASE_URL: '', DATABASE_POOL_SIZE: '4' });
  assert.equal(c.GRPC_PORT, 6000);
  assert.deepEqual(c.KAFKA_BROKERS, ['a:9092', 'b:9093']);
  assert.equal(c.DATABASE_URL, undefined);
  assert.equal(c.DATABASE_POOL_SIZE, 4);
});

test('every bad value names its key, and secrets are not echoed', () => {
  const cases: [Record<string, string>, string][] = [
    [{ DATABASE_URL: 'nonsense' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://x@h/db' }, 'DATABASE_URL'],
    [{ HTTP_PORT: '-1' }, 'HTTP_PORT'],
    [{ HTTP_PORT: 'eighty' }, 'HTTP_PORT'],
    [{ DATABASE_POOL_SIZE: '0' }, 'DATABASE_POOL_SIZE'],
    [{ PERSONAL_DATA_KEY: 'short-secret-value' }, 'PERSONAL_DATA_KEY'],
    [{ KAFKA_TOPIC_PREFIX: 'bad prefix!' }, 'KAFKA_TOPIC_PREFIX'],
  ];
  for (const [env, key] of cases) {
    assert.throws(() => loadConfig(env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, key);
      assert.ok(e.message.startsWith(`configuration error: ${key} `), e.message);
      assert.ok(!e.message.includes('short-secret-value'));
      return true;
    });
  }
});

test('CONFIG_FILE supplies values, the environment wins, unknown keys in the file are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-cfg-'));
  try {
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify({ GRPC_PORT: 7000, HTTP_PORT: 7001 }));
    const c = loadConfig({ CONFIG_FILE: file, HTTP_PORT: '9000' });
    assert.equal(c.GRPC_PORT, 7000);
    assert.equal(c.HTTP_PORT, 9000);
    writeFileSync(file, JSON.stringify({ GRPC_PROT: 1 }));
    assert.throws(() => loadConfig({ CONFIG_FILE: file }), /GRPC_PROT is not a known configuration key/);
    writeFileSync(file, '{not json');
    assert.throws(() => loadConfig({ CONFIG_FILE: file }), /CONFIG_FILE is not valid JSON/);
    assert.throws(() => loadConfig({ CONFIG_FILE: join(dir, 'missing.json') }), /CONFIG_FILE cannot be read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('personal-data key: created once under DATA_DIR in embedded mode, required with an external database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-key-'));
  try {
    const c = loadConfig({ DATA_DIR: dir });
    const first = resolvePersonalDataKey(c);
    assert.ok(first.length >= 32);
    assert.equal(resolvePersonalDataKey(c), first, 'the same key on the next start');
    assert.equal(statSync(join(dir, 'personal-data.key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'personal-data.key'), 'utf8').trim(), first);
    assert.throws(() => resolvePersonalDataKey(loadConfig({ DATA_DIR: dir, DATABASE_URL: 'mysql://u@h:3306/db' })), /PERSONAL_DATA_KEY is required/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every configuration key is documented in the README table', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  // A row's first cell may name several keys (`GRPC_HOST` / `GRPC_PORT`).
  const firstCells = [...readme.matchAll(/^\|([^|\n]+)\|/gm)].map((m) => m[1]!);
  const documented = new Set(firstCells.flatMap((cell) => [...cell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!)));
  const missing = Object.keys(configSchema.shape).filter((k) => !documented.has(k));
  assert.deepEqual(missing, [], `keys missing from the README configuration table: ${missing.join(', ')}`);
});
