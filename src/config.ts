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
