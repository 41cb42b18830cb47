/**
 * Configuration from environment variables (optionally a JSON file named by CONFIG_FILE; the environment wins),
 * validated once at start-up. A bad value stops the gateway with one line naming the key — never a stack trace,
 * never the secret itself.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

const databaseUrl = z
  .string()
  .trim()
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'mysql:' || u.protocol === 'mariadb:') && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be a mysql://user:password@host:port/database (or mariadb://) URL; leave it unset for embedded SQLite');

const brokerList = z
  .string()
  .trim()
  .transform((v) => v.split(',').map((b) => b.trim()).filter((b) => b !== ''))
  .refine((list) => list.length > 0 && list.every((b) => /^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b)), {
    message: 'must be a comma-separated list of host:port',
  });

/** Every key, its type and default. The README's configuration table mirrors this schema. */
export const configSchema = z.object({
  DATA_DIR: z.string().trim().min(1).default('./data'),
  DATABASE_URL: databaseUrl.optional(),
  DATABASE_POOL_SIZE: positiveInt.max(200).default(10),
  GRPC_HOST: z.string().trim().min(1).default('0.0.0.0'),
  GRPC_PORT: port.default(50051),
  HTTP_HOST: z.string().trim().min(1).default('0.0.0.0'),
  HTTP_PORT: port.default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KAFKA_BROKERS: brokerList.optional(),
  KAFKA_CLIENT_ID: z.string().trim().min(1).default('ticket-gateway'),
  KAFKA_TOPIC_PREFIX: z.string().trim().regex(/^[A-Za-z0-9._-]*$/, 'may hold only letters, digits, . _ -').default('ticket-gateway.'),
  PERSONAL_DATA_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  SHUTDOWN_GRACE_MS: positiveInt.max(600_000).default(10_000),
  // Suppliers and product mappings (issue 4).
  /** JSON: instance code -> { type: zhiyoubao|lianhe|sandbox, ...config }; `env:NAME` values read NAME. Unset: one 'sandbox'. */
  SUPPLIERS_FILE: z.string().trim().min(1).optional(),
  /** JSON or YAML product catalog, upserted into product_mappings at start. */
  PRODUCT_CATALOG_FILE: z.string().trim().min(1).optional(),
  PRODUCT_CACHE_TTL_MS: positiveInt.max(3_600_000).default(30_000),
  // Refunds and expiry (issue 7).
  REFUND_AUDIT_TIMEOUT_MS: positiveInt.default(48 * 3_600_000),
  REFUND_AUDIT_POLL_BASE_MS: positiveInt.default(60_000),
  REFUND_AUDIT_POLL_MAX_MS: positiveInt.default(3_600_000),
  EXPIRY_SWEEP_INTERVAL_MS: positiveInt.max(24 * 3_600_000).default(60_000),
  EXPIRY_SWEEP_BATCH_SIZE: positiveInt.max(10_000).default(100),
  WORK_CONCURRENCY: positiveInt.max(256).default(16),
  WORK_MAX_ATTEMPTS: positiveInt.max(1000).default(10),
  /** Retry delay of durable work: base * 2^(attempt-1), capped at the max (with jitter). */
  WORK_BACKOFF_BASE_MS: positiveInt.max(3_600_000).default(1_000),
  WORK_BACKOFF_MAX_MS: positiveInt.max(24 * 3_600_000).default(10 * 60_000),
  /** How long a claimed work item is ours; a crashed replica's items are taken over after this. Must exceed the longest call. */
  WORK_LEASE_MS: positiveInt.max(3_600_000).default(60_000),
  /** Finished work items (done, abandoned) are deleted this long after they finished; Taobao send/resend items are kept. */
  WORK_RETENTION_MS: positiveInt.default(30 * 24 * 3_600_000),
  OUTBOX_RETENTION_MS: positiveInt.default(7 * 24 * 3_600_000),
  OUTBOX_BATCH_SIZE: positiveInt.max(5000).default(500),
  // Taobao channel (issue 3). No TOP URL: TOP calls go to the built-in, logged TOP sandbox (src/taobao/top-sandbox.ts).
  TAOBAO_TOP_URL: z.string().trim().url().optional(),
  TAOBAO_APP_KEY: z.string().trim().min(1).optional(),
  TAOBAO_APP_SECRET: z.string().min(1).optional(),
  TAOBAO_SESSION: z.string().trim().min(1).optional(),
  TAOBAO_SIGN_METHOD: z.enum(['md5', 'hmac']).default('md5'),
  TAOBAO_CODEMERCHANT_ID: z.string().trim().min(1).optional(),
  /** The notice key (通知验证密钥). Unset: the documented dev key, with a loud warning at start-up. */
  TAOBAO_NOTICE_KEY: z.string().min(8, 'must be at least 8 characters').optional(),
  TAOBAO_NOTICE_MAX_AGE_MS: positiveInt.max(7 * 24 * 3600_000).default(24 * 3600_000),
  // Caller authentication (issue 7). Neither set: internal gRPC APIs are open (a warning at start-up).
  /** "name:sha256hex,..." — each internal service's name and the SHA-256 (hex) of its bearer token. */
  SERVICE_TOKENS: z.string().trim().min(1).optional(),
  /** JSON file { "name": "sha256hex" }, merged with SERVICE_TOKENS. */
  SERVICE_TOKENS_FILE: z.string().trim().min(1).optional(),
  // Reconciliation (issue 7). 0 turns the scheduled job off (the admin RPC still works).
  RECONCILIATION_INTERVAL_MS: z.coerce.number().int().min(0).max(7 * 24 * 3_600_000).default(3_600_000),
  RECONCILIATION_BATCH_SIZE: positiveInt.max(1000).default(50),
  /** Orders whose validity ended longer ago than this are no longer reconciled. */
  RECONCILIATION_LOOKBACK_MS: positiveInt.default(30 * 24 * 3_600_000),
  // Gates (issue 6).
  /** How long a gate device is cached for authentication; a revocation on another replica takes this long at most. */
  GATE_DEVICE_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  /** Consume attempts with an unknown outcome before the consume is reversed at Taobao. */
  GATE_CONSUME_AMBIGUOUS_LIMIT: positiveInt.max(100).default(3),
  /** Reverse attempts answering "serial not found" before a consume of unknown outcome is taken as never landed. */
  GATE_REVERSE_NOT_FOUND_LIMIT: positiveInt.max(100).default(3),
});

export type GatewayConfig = z.infer<typeof configSchema>;

/** A configuration problem, reported as one line that names the key. */
export class ConfigError extends Error {
  constructor(readonly key: string, detail: string) {
    super(`configuration error: ${key} ${detail}`);
    this.name = 'ConfigError';
  }
}

type Source = Record<string, string | undefined>;

function readConfigFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('CONFIG_FILE', `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}): ${path}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('CONFIG_FILE', `is not valid JSON: ${path}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('CONFIG_FILE', `must hold a JSON object of KEY: value: ${path}`);
  }
  const out: Source = {};
  for (const [k, v] of Object.entries(parsed)) out[k] = v === null || v === undefined ? undefined : String(v);
  return out;
}

/** Loads and validates the configuration; throws ConfigError naming the first bad key. */
export function loadConfig(env: Source = process.env): GatewayConfig {
  const fromFile = env.CONFIG_FILE ? readConfigFile(env.CONFIG_FILE) : {};
  const merged: Source = {};
  for (const key of Object.keys(configSchema.shape)) {
    // An empty variable means "not set", so `DATABASE_URL= npm start` falls back to the default.
    const v = env[key] !== undefined && env[key] !== '' ? env[key] : fromFile[key];
    if (v !== undefined && v !== '') merged[key] = v;
  }
  const unknown = Object.keys(fromFile).filter((k) => !(k in configSchema.shape));
  if (unknown.length > 0) throw new ConfigError(unknown[0]!, `is not a known configuration key (in CONFIG_FILE)`);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? 'configuration');
    throw new ConfigError(key, issue.message);
  }
  return result.data;
}
