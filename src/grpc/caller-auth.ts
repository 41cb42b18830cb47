/**
 * Who is calling: internal services present `authorization: Bearer <service token>`; we keep only the SHA-256 of
 * each token (SERVICE_TOKENS = "name:sha256hex,..." or SERVICE_TOKENS_FILE = JSON { "name": "sha256hex" }), so a
 * leaked config does not leak tokens. The gRPC server applies this per service (grpc-server.ts): internal APIs
 * need a token, gate services authenticate their devices themselves, health and reflection stay open.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';

/** How a service's callers are authenticated. */
export type CallerPolicy =
  /** Every call needs a valid service token (when tokens are configured). */
  | 'service-token'
  /** The service authenticates its callers itself (gate devices). */
  | 'self-authenticated';

export type CallerCheck = { readonly ok: true; readonly caller: string } | { readonly ok: false; readonly problem: 'missing' | 'malformed' | 'unknown' };

/** Caller name when service tokens are off. */
export const ANONYMOUS_CALLER = 'anonymous';

export class ServiceTokenError extends Error {
  override readonly name = 'ServiceTokenError';
  /** The configuration key at fault, once known. */
  key = 'SERVICE_TOKENS';
}

function underKey<T>(key: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ServiceTokenError) e.key = key;
    throw e;
  }
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function entry(name: string, hash: string): [string, Buffer] {
  const n = name.trim();
  const h = hash.trim().toLowerCase();
  if (!NAME.test(n)) throw new ServiceTokenError(`service name ${JSON.stringify(n.slice(0, 64))} must be 1-64 of A-Z a-z 0-9 . _ -`);
  if (!SHA256_HEX.test(h)) throw new ServiceTokenError(`the token hash of "${n}" must be 64 hex digits (sha256 of the token)`);
  return [n, Buffer.from(h, 'hex')];
}

/** Parses "name:sha256hex,name2:sha256hex" (whitespace and newlines also separate entries). */
export function parseServiceTokenList(text: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const item of text.split(/[\s,]+/).filter((s) => s !== '')) {
    const i = item.indexOf(':');
    if (i <= 0) throw new ServiceTokenError('each entry must be name:sha256hex');
    const [name, hash] = entry(item.slice(0, i), item.slice(i + 1));
    if (out.has(name)) throw new ServiceTokenError(`service "${name}" is listed twice`);
    out.set(name, hash);
  }
  return out;
}

/** Parses a JSON object { "name": "sha256hex" }. */
export function parseServiceTokenJson(text: string): Map<string, Buffer> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ServiceTokenError('is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ServiceTokenError('must be a JSON object of "service name": "sha256hex"');
  const out = new Map<string, Buffer>();
  for (const [name, hash] of Object.entries(parsed)) {
    if (typeof hash !== 'string') throw new ServiceTokenError(`the token hash of "${name}" must be a string`);
    const [n, h] = entry(name, hash);
    out.set(n, h);
  }
  return out;
}

/** Checks bearer tokens against the configured hashes. With no tokens configured it lets everyone in as "anonymous". */
export class CallerAuthenticator {
  private readonly tokens: ReadonlyArray<readonly [string, Buffer]>;

  constructor(tokens: ReadonlyMap<string, Buffer>) {
    this.tokens = [...tokens.entries()];
  }

  static fromConfig(config: { SERVICE_TOKENS?: string; SERVICE_TOKENS_FILE?: string }): CallerAuthenticator {
    const tokens = new Map<string, Buffer>();
    const list = config.SERVICE_TOKENS;
    if (list) for (const [n, h] of underKey('SERVICE_TOKENS', () => parseServiceTokenList(list))) tokens.set(n, h);
    const file = config.SERVICE_TOKENS_FILE;
    if (file) underKey('SERVICE_TOKENS_FILE', () => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new ServiceTokenError(`cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      for (const [n, h] of parseServiceTokenJson(text)) {
        if (tokens.has(n)) throw new ServiceTokenError(`service "${n}" is in both SERVICE_TOKENS and SERVICE_TOKENS_FILE`);
        tokens.set(n, h);
      }
    });
    return new CallerAuthenticator(tokens);
  }

  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  get callerNames(): string[] {
    return this.tokens.map(([n]) => n);
  }

  check(metadata: Metadata): CallerCheck {
    if (!this.enabled) return { ok: true, caller: ANONYMOUS_CALLER };
    const values = metadata.get('authorization');
    if (values.length === 0) return { ok: false, problem: 'missing' };
    const header = values[0];
    const m = typeof header === 'string' && values.length === 1 ? /^Bearer ([\x21-\x7e]{16,512})$/i.exec(header.trim()) : null;
    if (!m) return { ok: false, problem: 'malformed' };
    const presented = createHash('sha256').update(m[1]!, 'utf8').digest();
    // Compare against every entry (no early exit), in constant time per entry.
    let caller: string | undefined;
    for (const [name, hash] of this.tokens) if (timingSafeEqual(presented, hash) && caller === undefined) caller = name;
    return caller === undefined ? { ok: false, problem: 'unknown' } : { ok: true, caller };
  }
}
