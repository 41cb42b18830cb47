/**
 * The registry of gate devices. A device proves itself on every call with its code and secret; we keep only a
 * SHA-256 of the secret (32 random bytes, so no slow hash is needed) and compare in constant time. The secret is
 * returned once, at provisioning or rotation.
 *
 * Authentication is on every gate call, so devices are cached in process for `cacheMs` (GATE_DEVICE_CACHE_MS,
 * default 1 s) and a busy gate costs no database read per call. What is cached is the device row, never the outcome
 * of an authentication: the presented secret is checked against the row's hash on every call, so a wrong secret is
 * refused whatever the cache holds. A revocation or rotation made through this registry takes effect here at once
 * (the entry is dropped, and a load that was already under way is not cached); another replica honours a revoked
 * device, or an old secret, for at most `cacheMs` plus one database read.
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

/** A device row as read (undefined: no such device), its view, and until when it may be used. */
interface CachedDevice {
  readonly entity: GateDeviceEntity | undefined;
  readonly view: GateDeviceView | undefined;
  readonly until: number;
}

/** Bounds the cache (unknown codes are cached too): past this many entries it starts afresh. */
const MAX_CACHED_DEVICES = 10_000;

export class DeviceRegistry {
  private readonly clock: Clock;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, CachedDevice>();
  /** Reads under way, so concurrent calls of one device share a single read when its entry expires. */
  private readonly loading = new Map<string, Promise<CachedDevice>>();
  /** Bumped by every change made here: a read that started before a change is not cached. */
  private changes = 0;

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
    this.forget(code);
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
    this.forget(deviceCode);
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
    this.forget(deviceCode);
    return device;
  }

  async list(scenicSpotCode?: string): Promise<GateDeviceView[]> {
    const rows = await this.db.read((em) =>
      em.find(GateDeviceEntity, { where: scenicSpotCode ? { scenicSpotCode } : {}, order: { deviceCode: 'ASC' }, take: 10_000 }),
    );
    return rows.map(toDeviceView);
  }

  async get(deviceCode: string): Promise<GateDeviceView | undefined> {
    return (await this.load(deviceCode)).view;
  }

  /** Checks a device's code and secret. The secret's hash is compared in constant time. */
  async authenticate(deviceCode: string | undefined, secret: string | undefined): Promise<DeviceAuthentication> {
    if (!deviceCode || !secret || !CODE.test(deviceCode) || secret.length > 256) return { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' };
    const { entity: e, view: device } = await this.load(deviceCode);
    // Hash anyway, so an unknown device costs the same as a wrong secret.
    const presented = Buffer.from(hashSecret(secret), 'hex');
    const stored = Buffer.from(e?.secretHash ?? '0'.repeat(64), 'hex');
    const match = stored.length === presented.length && timingSafeEqual(stored, presented);
    if (!e || !device || !match) return { ok: false, reason: 'DEVICE_NOT_AUTHENTICATED' };
    if (e.status !== 'enabled') return { ok: false, reason: 'DEVICE_REVOKED', device };
    return { ok: true, device };
  }

  /** Forgets cached devices (tests, or after an admin change on another replica is known). */
  clearCache(): void {
    this.changes++;
    this.cache.clear();
    this.loading.clear();
  }

  private forget(deviceCode: string): void {
    this.changes++;
    this.cache.delete(deviceCode);
    this.loading.delete(deviceCode);
  }

  private load(deviceCode: string): Promise<CachedDevice> {
    const hit = this.cache.get(deviceCode);
    if (hit && hit.until > Date.now()) return Promise.resolve(hit);
    const pending = this.loading.get(deviceCode);
    if (pending) return pending;
    const changesBefore = this.changes;
    const read = this.db
      .read((em) => em.findOne(GateDeviceEntity, { where: { deviceCode } }))
      .then((row): CachedDevice => {
        const entity = row ?? undefined;
        const loaded = { entity, view: entity && toDeviceView(entity), until: Date.now() + this.cacheMs };
        // A change made here while the row was being read may not be in it: use it for this call, cache it not.
        if (this.cacheMs > 0 && this.changes === changesBefore) {
          if (this.cache.size >= MAX_CACHED_DEVICES) this.cache.clear();
          this.cache.set(deviceCode, loaded);
        }
        return loaded;
      })
      .finally(() => {
        if (this.loading.get(deviceCode) === read) this.loading.delete(deviceCode);
      });
    this.loading.set(deviceCode, read);
    return read;
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
