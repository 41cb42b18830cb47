/**
 * The configured supplier instances: one adapter per supplier account, by instance code, built once at
 * start from SUPPLIERS_FILE and validated there, so a typo stops start-up instead of the first order.
 *
 * SUPPLIERS_FILE (JSON):
 *   {
 *     "zyb-huangshan": { "type": "zhiyoubao", "endpoint": "https://…/boss/service/code.htm",
 *                        "corpCode": "TESTFX", "userName": "admin", "privateKey": "env:ZYB_HUANGSHAN_KEY" },
 *     "lianhe-main":   { "type": "lianhe", "baseUrl": "https://…", "partnerId": 1985, "apiName": "api",
 *                        "clientSecret": "env:LIANHE_SECRET" }
 *   }
 * Any string value `env:NAME` is read from the environment variable NAME (keep secrets out of the file).
 * No file: a single `sandbox` instance, so the embedded mode works with no configuration.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config';
import type { Clock } from '../domain/model';
import { systemClock } from '../domain/model';
import { LIANHE, lianheConfigSchema } from './lianhe/lianhe-adapter';
import { SANDBOX, sandboxConfigSchema } from './sandbox/sandbox-adapter';
import type { SupplierAdapter } from './supplier-adapter';
import { SupplierConfigError } from './supplier-errors';
import { createSupplier, supplierCodes } from './supplier-registry';
import { ZHIYOUBAO, zhiyoubaoConfigSchema } from './zhiyoubao/zhiyoubao-adapter';

/** The configured supplier instances (one per supplier account), by instance code. */
export interface SupplierDirectory {
  get(instanceCode: string): SupplierAdapter | undefined;
  instances(): string[];
}

/** Instance codes appear in URLs (`/suppliers/<code>/callback`) and in `inbound_messages.source` (32 chars). */
export const INSTANCE_CODE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/** The instance used when no SUPPLIERS_FILE is given. */
export const DEFAULT_SANDBOX_INSTANCE = 'sandbox';

/**
 * Known config keys per supplier type, to refuse a misspelt key (the adapters' own schemas drop unknown keys
 * silently). A type missing here is still validated by its adapter, just without this check.
 */
const CONFIG_KEYS: Readonly<Record<string, readonly string[]>> = {
  [ZHIYOUBAO]: Object.keys(zhiyoubaoConfigSchema.shape),
  [LIANHE]: Object.keys(lianheConfigSchema.shape),
  [SANDBOX]: Object.keys(sandboxConfigSchema.shape),
};

const ENV_REFERENCE = /^env:([A-Za-z_][A-Za-z0-9_]*)$/;

export class StaticSupplierDirectory implements SupplierDirectory {
  private readonly byCode: ReadonlyMap<string, SupplierAdapter>;

  constructor(adapters: Iterable<SupplierAdapter>) {
    const byCode = new Map<string, SupplierAdapter>();
    for (const a of adapters) {
      if (byCode.has(a.instanceCode)) throw new Error(`supplier instance ${a.instanceCode} is configured twice`);
      byCode.set(a.instanceCode, a);
    }
    this.byCode = byCode;
  }

  get(instanceCode: string): SupplierAdapter | undefined {
    return this.byCode.get(instanceCode);
  }

  instances(): string[] {
    return [...this.byCode.keys()].sort();
  }
}

export interface SupplierDirectoryOptions {
  /** Where `env:NAME` references are read; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
}

function fail(detail: string): never {
  throw new ConfigError('SUPPLIERS_FILE', detail);
}

/** Replaces every `env:NAME` string by that variable's value; names the field (never a value) when unset. */
function resolveEnvReferences(value: unknown, env: Readonly<Record<string, string | undefined>>, where: string): unknown {
  if (typeof value === 'string') {
    const ref = ENV_REFERENCE.exec(value);
    if (!ref) return value;
    const resolved = env[ref[1]!];
    if (resolved === undefined || resolved === '') fail(`${where} refers to environment variable ${ref[1]}, which is not set`);
    return resolved;
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvReferences(v, env, `${where}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveEnvReferences(v, env, `${where}.${k}`)]));
  }
  return value;
}

/**
 * Builds the directory from the parsed SUPPLIERS_FILE content. Every problem throws a ConfigError naming the
 * instance and the field; secret values never appear in it.
 */
export function createSupplierDirectory(spec: unknown, opts: SupplierDirectoryOptions = {}): StaticSupplierDirectory {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? systemClock;
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    fail('must hold a JSON object of instance code -> { "type": …, …config }');
  }
  const entries = Object.entries(spec as Record<string, unknown>);
  if (entries.length === 0) fail('configures no supplier instance');
  const adapters: SupplierAdapter[] = [];
  for (const [instance, raw] of entries) {
    const at = `instance ${JSON.stringify(instance)}`;
    if (!INSTANCE_CODE_PATTERN.test(instance)) {
      fail(`${at}: instance codes are 1-32 letters, digits, '-' or '_', starting with a letter or digit`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`${at}: must be an object with a "type"`);
    const { type, ...rest } = raw as Record<string, unknown>;
    if (typeof type !== 'string' || !supplierCodes().includes(type)) {
      fail(`${at}: type must be one of ${supplierCodes().join(', ')}`);
    }
    if (rest['instanceCode'] !== undefined && rest['instanceCode'] !== instance) {
      fail(`${at}: instanceCode must be left out (the key is the instance code)`);
    }
    const known = CONFIG_KEYS[type];
    const unknownKey = known && Object.keys(rest).find((k) => !known.includes(k));
    if (unknownKey) fail(`${at}: unknown ${type} setting ${JSON.stringify(unknownKey)} (known: ${known.filter((k) => k !== 'instanceCode').join(', ')})`);
    const config = { ...(resolveEnvReferences(rest, env, at) as Record<string, unknown>), instanceCode: instance };
    try {
      adapters.push(createSupplier(type, config, { clock }));
    } catch (err) {
      if (err instanceof SupplierConfigError || err instanceof z.ZodError) fail(`${at}: ${oneLine(err.message)}`);
      throw err;
    }
  }
  return new StaticSupplierDirectory(adapters);
}

/** The single sandbox instance of the embedded default. */
export function defaultSupplierDirectory(opts: SupplierDirectoryOptions = {}): StaticSupplierDirectory {
  return new StaticSupplierDirectory([createSupplier(SANDBOX, { instanceCode: DEFAULT_SANDBOX_INSTANCE }, { clock: opts.clock ?? systemClock })]);
}

/** Reads SUPPLIERS_FILE; no file -> the sandbox default. */
export function loadSupplierDirectory(file: string | undefined, opts: SupplierDirectoryOptions = {}): StaticSupplierDirectory {
  if (!file) return defaultSupplierDirectory(opts);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}): ${file}`);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch {
    fail(`is not valid JSON: ${file}`);
  }
  return createSupplierDirectory(spec, opts);
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*→ at /g, ' at ').replace(/\s*\n\s*/g, '; ').replace(/✖\s*/g, '');
}
