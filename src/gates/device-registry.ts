/**
 * The registry of gate devices. A device proves itself on every call with its code and secret; we keep only a
 * SHA-256 of the secret (32 random bytes, so no slow hash is needed) and compare in constant time. The secret is
 * returned once, at provisioning or rotation.
 *
 * Authentication is on every gate call, so devices are cached briefly; an admin change made here drops the cache
 * entry at once (another replica sees it within `cacheMs`).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CheckMethod, systemClock, type Clock } from '../domain/model';
import type { Database } from '../persistence/database';
import { isUniqueViolation } from '../persistence/errors';
import { GateDeviceEntity } from './gate-device.entity';

export interface GateDeviceView {
  readonly deviceCode: string;
  readonly supplierEnterpriseCode: string;
  readonly scenicSpotCode: string;
  readonly allowedCheckMethods: readonly CheckMethod[];
  readonly posid: string;
  readonly enabled: boolean;
  readonly createdAt: number;
  readonly rotatedAt: number | null;
  readonly revokedAt: number | null;
}

export interface ProvisionDeviceInput {
  readonly deviceCode: string;
  readonly supplierEnterpriseCode: string;
  readonly scenicSpotCode: string;
  readonly allowedCheckMethods: readonly CheckMethod[];
  readonly posid: string;
}

/** Bad admin input, naming the field. */
export class InvalidDeviceInputError extends Error {
  override readonly name = 'InvalidDeviceInputError';
  constructor(readonly field: string, problem: string) {
    super(`${field}: ${problem}`);
  }
}

export class DeviceNotFoundError extends Error {
  override readonly name = 'DeviceNotFoundError';
  constructor(readonly deviceCode: string) {
    super(`gate device ${JSON.stringify(deviceCode)} not found`);
  }
}

export class DeviceAlreadyExistsError extends Error {
  override readonly name = 'DeviceAlreadyExistsError';
  constructor(readonly deviceCode: string) {
    super(`gate device ${JSON.stringify(deviceCode)} already exists`);
  }
}

export class DeviceRevokedError extends Error {
  override readonly name = 'DeviceRevokedError';
  constructor(readonly deviceCode: string) {
    super(`gate device ${JSON.stringify(deviceCode)} is revoked`);
  }
}

/** Who is calling: a known device with the right secret (possibly revoked), or refused. */
export type DeviceAuthentication =
  | { readonly ok: true; readonly device: GateDeviceView }
  | { readonly ok: false; readonly reason: 'DEVICE_REVOKED'; readonly device: GateDeviceView }
  | { readonly ok: false; readonly reason: 'DEVICE_NOT_AUTHENTICATED' };

const CODE = /^[A-Za-z0-9_.:-]{1,64}$/;
const POSID = /^[A-Za-z0-9_.:-]{1,64}$/;
const METHODS = new Set<string>(Object.values(CheckMethod));

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function toDeviceView(e: GateDeviceEntity): GateDeviceView {
  return {
    deviceCode: e.deviceCode,
    supplierEnterpriseCode: e.supplierEnterpriseCode,
    scenicSpotCode: e.scenicSpotCode,
    allowedCheckMethods: e.allowedCheckMethods.split(',').filter((m) => METHODS.has(m)) as CheckMethod[],
    posid: e.posid,
    enabled: e.status === 'enabled',
    createdAt: e.createdAt,
    rotatedAt: e.rotatedAt,
    revokedAt: e.revokedAt,
  };
}

interface CachedDevice {
  readonly entity: GateDeviceEntity | undefined;
  readonly until: number;
}

export class DeviceRegistry {
  private readonly clock: Clock;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, CachedDevice>();

  constructor(private readonly db: Database, opts: { clock?: Clock; cacheMs?: number } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.cacheMs = Math.max(0, opts.cacheMs ?? 1000);
  }

  async provision(input: ProvisionDeviceInput): Promise<{ device: GateDeviceView; secret: string }> {
    const code = checkCode('device_code', input.deviceCode);
    const enterprise = checkCode('supplier_enterprise_code', input.supplierEnterpriseCode);
    const spot = checkCode('scenic_spot_code', input.scenicSpotCode);
    if (!POSID.test(input.posid)) throw new InvalidDeviceInputError('posid', 'must be 1-64 of [A-Za-z0-9_.:-]');
    const methods = checkMethods(input.allowedCheckMethods);
    const secret = newSecret();
    const now = this.clock.now();
    const entity: GateDeviceEntity = Object.assign(new GateDeviceEntity(), {
      deviceCode: code,
      supplierEnterpriseCode: enterprise,
      scenicSpotCode: spot,
      allowedCheckMethods: methods.join(','),
      posid: input.posid,
      status: 'enabled' as const,
      secretHash: hashSecret(secret),
      createdAt: now,
      rotatedAt: null,
      revokedAt: null,
    });
    try {
      await this.db.transaction((em) => em.insert(GateDeviceEntity, entity));
    } catch (err) {
      if (isUniqueViolation(err)) throw new DeviceAlreadyExistsError(code);
      throw err;
    }
    this.cache.delete(code);
    return { device: toDeviceView(entity), secret };
  }

  /** A new secret; the old one is refused from now on. A revoked device gets none. */
  async rotateSecret(deviceCode: string): Promise<{ device: GateDeviceView; secret: string }> {
    const secret = newSecret();
    const now = this.clock.now();
    const device = await this.db.transaction(async (em) => {
      const e = await em.findOne(GateDeviceEntity, { where: { deviceCode } });
      if (!e) throw new DeviceNotFoundError(deviceCode);
      if (e.status === 'revoked') throw new DeviceRevokedError(deviceCode);
      await em.update(GateDeviceEntity, { deviceCode, status: 'enabled' }, { secretHash: hashSecret(secret), rotatedAt: now });
      return toDeviceView({ ...e, rotatedAt: now } as GateDeviceEntity);
    });
    this.cache.delete(deviceCode);
    return { device, secret };
  }

  /** Revoked for good; revoking twice keeps the first instant. */
  async revoke(deviceCode: string): Promise<GateDeviceView> {
    const now = this.clock.now();
    const device = await this.db.transaction(async (em) => {
      const e = await em.findOne(GateDeviceEntity, { where: { deviceCode } });
      if (!e) throw new DeviceNotFoundError(deviceCode);
      if (e.status === 'revoked') return toDeviceView(e);
      await em.update(GateDeviceEntity, { deviceCode }, { status: 'revoked', revokedAt: now });
      return toDeviceView({ ...e, status: 'revoked', revokedAt: now } as GateDeviceEntity);
    });
    this.cache.delete(deviceCode);
    return device;
  }

  async list(scenicSpotCode?: string): Promise<GateDeviceView[]> {
    const rows = await this.db.read((em) =>
      em.find(GateDeviceEntity, { where: scenicSpotCode ? { scenicSpotCode } : {}, order: { deviceCode: 'ASC' }, take: 10_000 }),
    );
    return rows.map(toDeviceView);
  }

  async get(deviceCode: string): Promise<GateDeviceView | undefined> {
    const e = await this.load(deviceCode);
    return e ? toDeviceView(e) : undefined;
  }

  /** Checks a device's code and secret. The secret's hash is compared in constant time. */
  async authenticate(deviceCode: string | undefined, secret: string | undefined): Promise<DeviceAuthentication> {
    if (!deviceCode || !secret || !CODE.test(deviceCode) || secret.length > 256) return { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' };
    const e = await this.load(deviceCode);
    // Hash anyway, so an unknown device costs the same as a wrong secret.
    const presented = Buffer.from(hashSecret(secret), 'hex');
    const stored = Buffer.from(e?.secretHash ?? '0'.repeat(64), 'hex');
    const match = stored.length === presented.length && timingSafeEqual(stored, presented);
    if (!e || !match) return { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' };
    const device = toDeviceView(e);
    if (e.status !== 'enabled') return { ok: false, reason: 'DEVICE_REVOKED', device };
    return { ok: true, device };
  }

  /** Forgets cached devices (tests, or after an admin change on another replica is known). */
  clearCache(): void {
    this.cache.clear();
  }

  private async load(deviceCode: string): Promise<GateDeviceEntity | undefined> {
    const now = Date.now();
    const hit = this.cache.get(deviceCode);
    if (hit && hit.until > now) return hit.entity;
    const e = (await this.db.read((em) => em.findOne(GateDeviceEntity, { where: { deviceCode } }))) ?? undefined;
    if (this.cacheMs > 0) {
      // Bounded: unknown codes are cached too, so drop everything when it grows past a sane size.
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(deviceCode, { entity: e, until: now + this.cacheMs });
    }
    return e;
  }
}

function checkCode(field: string, value: string): string {
  const v = (value ?? '').trim();
  if (!CODE.test(v)) throw new InvalidDeviceInputError(field, 'must be 1-64 of [A-Za-z0-9_.:-]');
  return v;
}

function checkMethods(methods: readonly CheckMethod[]): CheckMethod[] {
  if (methods.length === 0) throw new InvalidDeviceInputError('allowed_check_methods', 'at least one check method');
  const set = new Set(methods);
  if (set.size !== methods.length) throw new InvalidDeviceInputError('allowed_check_methods', 'check methods repeat');
  for (const m of set) if (!METHODS.has(m)) throw new InvalidDeviceInputError('allowed_check_methods', `unknown check method ${String(m)}`);
  return [...set];
}
