/**
 * Product mappings in the database: which supplier ticket type a Taobao item stands for.
 *
 * Every rule a mapping must follow lives in one place, `parseProductCatalog`: the admin RPCs and the file
 * loader both go through it, so a mapping accepted one way is accepted the other. Reads are served from a
 * small in-memory snapshot (the catalog is hundreds of rows, asked on every `send` notice), dropped on every
 * change made here and otherwise refreshed after `cacheTtlMs` so changes made by another replica show up.
 */
import { readFileSync } from 'node:fs';
import type { EntityManager } from 'typeorm';
import { ConfigError } from '../config';
import type { Clock } from '../domain/model';
import type { CheckMethod } from '../domain/model';
import type { Database } from '../persistence/database';
import { ProductMappingEntity } from '../persistence/entities/product-mapping.entity';
import { isUniqueViolation } from '../persistence/errors';
import { parseProductCatalog, ProductCatalogError, resolveProduct, type ProductCatalog, type ProductMapping } from './product-catalog';

/** Which supplier ticket type a Taobao item stands for. The SKU code (`sub_outer_iid`) wins over the item's. */
export interface ProductDirectory {
  resolve(outerIid: string | null, subOuterIid: string | null): Promise<ProductMapping | undefined>;
}

/** One problem with a mapping, naming the catalog-file field (`ticket_type`, `validity.end`, …). */
export interface MappingIssue {
  readonly field: string;
  readonly message: string;
}

/** A mapping that breaks a rule; nothing was changed. */
export class InvalidProductMappingError extends Error {
  override name = 'InvalidProductMappingError';
  constructor(readonly issues: readonly MappingIssue[]) {
    super(`invalid product mapping: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
  }
}

/** The mapping names a supplier instance that is not configured; nothing was changed. */
export class UnknownSupplierInstanceError extends Error {
  override name = 'UnknownSupplierInstanceError';
  constructor(
    readonly supplierInstance: string,
    readonly known: readonly string[],
    /** Which catalog entry, when loading a file. */
    readonly entry?: string,
  ) {
    super(
      `${entry ? `${entry}: ` : ''}supplier: unknown supplier instance ${JSON.stringify(supplierInstance)} (configured: ${known.join(', ') || 'none'})`,
    );
  }
}

/** A list page token we did not issue. */
export class InvalidMappingPageTokenError extends Error {
  override name = 'InvalidMappingPageTokenError';
  constructor() {
    super('invalid page token');
  }
}

/** The mapping as written in a catalog file (snake_case keys). */
export function toCatalogEntry(m: ProductMapping): Record<string, unknown> {
  return {
    outer_iid: m.outerIid,
    ...(m.subOuterIid === undefined ? {} : { sub_outer_iid: m.subOuterIid }),
    supplier: m.supplierInstance,
    ticket_type: m.supplierTicketType,
    scenic_spot: m.scenicSpotCode,
    check_methods: [...m.checkMethods],
    real_name_required: m.realNameRequired,
    validity: { ...m.validity },
    expiry_refund: { allowed: m.expiryRefund.allowed, ratio_bp: m.expiryRefund.ratioBasisPoints },
  };
}

/**
 * Checks one mapping against the catalog rules and returns it normalised (codes trimmed). Throws
 * InvalidProductMappingError whose issues name catalog-file fields.
 */
export function validateProductMapping(m: ProductMapping): ProductMapping {
  const entry = toCatalogEntry(m);
  try {
    const [parsed] = parseProductCatalog(JSON.stringify({ products: [entry] })).products;
    return parsed!;
  } catch (err) {
    if (!(err instanceof ProductCatalogError)) throw err;
    // Issues read "<entry label>: <field path>: <message>"; the label is computed from the entry as the parser does.
    const label = catalogEntryLabel(entry, 0);
    throw new InvalidProductMappingError(
      err.issues.map((issue) => {
        const rest = issue.startsWith(`${label}: `) ? issue.slice(label.length + 2) : issue;
        const cut = rest.indexOf(': ');
        return cut < 0 ? { field: '(entry)', message: rest } : { field: rest.slice(0, cut), message: rest.slice(cut + 2) };
      }),
    );
  }
}

function catalogEntryLabel(r: Record<string, unknown>, i: number): string {
  const outer = typeof r['outer_iid'] === 'string' ? ` outer_iid=${r['outer_iid']}` : '';
  const sub = typeof r['sub_outer_iid'] === 'string' ? ` sub_outer_iid=${r['sub_outer_iid']}` : '';
  return `products[${i}]${outer || sub ? ` (${(outer + sub).trim()})` : ''}`;
}

export interface StoredProductMapping extends ProductMapping {
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface MappingPage {
  readonly mappings: readonly StoredProductMapping[];
  /** Absent on the last page. */
  readonly nextPageToken?: string;
}

export interface CatalogLoadResult {
  readonly inserted: number;
  readonly updated: number;
  readonly unchanged: number;
}

export interface DbProductDirectoryOptions {
  readonly clock: Clock;
  /** True when a supplier instance of this code is configured. */
  readonly isKnownSupplier: (instanceCode: string) => boolean;
  /** Lists the configured instances, for error messages. */
  readonly knownSuppliers: () => readonly string[];
  /** How long a snapshot serves reads before it is reloaded (changes by other replicas). Default 30 s. */
  readonly cacheTtlMs?: number;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

function toMapping(e: ProductMappingEntity): StoredProductMapping {
  return {
    outerIid: e.outerIid,
    subOuterIid: e.subOuterIid === '' ? undefined : e.subOuterIid,
    supplierInstance: e.supplierInstance,
    supplierTicketType: e.supplierTicketType,
    scenicSpotCode: e.scenicSpotCode,
    checkMethods: e.checkMethods.split(',').filter((c) => c !== '') as CheckMethod[],
    realNameRequired: Boolean(e.realNameRequired),
    validity:
      e.validityKind === 'fixed'
        ? { kind: 'fixed', start: e.validityStart ?? '', end: e.validityEnd ?? '' }
        : { kind: 'days_from_visit', days: e.validityDays ?? 1 },
    expiryRefund: { allowed: Boolean(e.expiryRefundAllowed), ratioBasisPoints: e.expiryRefundRatioBp },
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

/** The stored columns of a mapping (no timestamps), for writing and for "did anything change". */
function columnsOf(m: ProductMapping) {
  return {
    supplierInstance: m.supplierInstance,
    supplierTicketType: m.supplierTicketType,
    scenicSpotCode: m.scenicSpotCode,
    checkMethods: m.checkMethods.join(','),
    realNameRequired: m.realNameRequired,
    validityKind: m.validity.kind,
    validityDays: m.validity.kind === 'days_from_visit' ? m.validity.days : null,
    validityStart: m.validity.kind === 'fixed' ? m.validity.start : null,
    validityEnd: m.validity.kind === 'fixed' ? m.validity.end : null,
    expiryRefundAllowed: m.expiryRefund.allowed,
    expiryRefundRatioBp: m.expiryRefund.ratioBasisPoints,
  };
}

function sameColumns(e: ProductMappingEntity, m: ProductMapping): boolean {
  const want = columnsOf(m);
  return (Object.keys(want) as (keyof typeof want)[]).every((k) => {
    const have = e[k] as unknown;
    // Booleans come back as 0/1 from MySQL TINYINT.
    return typeof want[k] === 'boolean' ? Boolean(have) === want[k] : have === want[k];
  });
}

function encodeToken(outerIid: string, subOuterIid: string): string {
  return Buffer.from(JSON.stringify([outerIid, subOuterIid]), 'utf8').toString('base64url');
}

function decodeToken(token: string): [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new InvalidMappingPageTokenError();
}

/** The product directory backed by `product_mappings`, with the admin operations. */
export class DbProductDirectory implements ProductDirectory {
  private readonly cacheTtlMs: number;
  private snapshot?: { catalog: ProductCatalog; loadedAt: number };
  private loading?: Promise<ProductCatalog>;
  /** Bumped on every change: a load that started before it must not be kept. */
  private generation = 0;

  constructor(
    private readonly db: Database,
    private readonly opts: DbProductDirectoryOptions,
  ) {
    this.cacheTtlMs = opts.cacheTtlMs ?? 30_000;
  }

  async resolve(outerIid: string | null, subOuterIid: string | null): Promise<ProductMapping | undefined> {
    const catalog = await this.catalog();
    return resolveProduct(catalog, outerIid ?? undefined, subOuterIid ?? undefined);
  }

  /** Drops the snapshot: the next read goes to the database. */
  invalidate(): void {
    this.generation++;
    this.snapshot = undefined;
    this.loading = undefined;
  }

  /** The exact mapping stored under these codes (no SKU fallback), or undefined. */
  async get(outerIid: string, subOuterIid?: string): Promise<StoredProductMapping | undefined> {
    const row = await this.db.read((em) =>
      em.findOne(ProductMappingEntity, { where: { outerIid: outerIid.trim(), subOuterIid: subOuterIid?.trim() ?? '' } }),
    );
    return row ? toMapping(row) : undefined;
  }

  /** Mappings ordered by (outer_iid, sub_outer_iid), optionally of one supplier instance. */
  async list(query: { supplierInstance?: string; pageSize?: number; pageToken?: string } = {}): Promise<MappingPage> {
    const size = Math.min(Math.max(query.pageSize ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE);
    const after = query.pageToken ? decodeToken(query.pageToken) : undefined;
    const rows = await this.db.read((em) => {
      const qb = em.createQueryBuilder(ProductMappingEntity, 'm');
      if (query.supplierInstance) qb.andWhere('m.supplierInstance = :s', { s: query.supplierInstance });
      if (after) {
        qb.andWhere('(m.outerIid > :o OR (m.outerIid = :o AND m.subOuterIid > :so))', { o: after[0], so: after[1] });
      }
      return qb.orderBy('m.outerIid', 'ASC').addOrderBy('m.subOuterIid', 'ASC').take(size + 1).getMany();
    });
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      mappings: page.map(toMapping),
      nextPageToken: rows.length > size && last ? encodeToken(last.outerIid, last.subOuterIid) : undefined,
    };
  }

  /**
   * Creates or replaces the mapping under its codes. Throws InvalidProductMappingError /
   * UnknownSupplierInstanceError and changes nothing when it is refused.
   */
  async upsert(mapping: ProductMapping): Promise<{ mapping: StoredProductMapping; created: boolean }> {
    const m = this.check(mapping);
    let result: { mapping: StoredProductMapping; created: boolean };
    try {
      result = await this.db.transaction((em) => this.write(em, m));
    } catch (err) {
      // Two admins creating the same mapping at once: the loser replaces it, as an upsert should.
      if (!isUniqueViolation(err)) throw err;
      result = await this.db.transaction((em) => this.write(em, m));
    }
    this.invalidate();
    return result;
  }

  /** Removes the mapping stored under exactly these codes; false when there was none. */
  async delete(outerIid: string, subOuterIid?: string): Promise<boolean> {
    const res = await this.db.transaction((em) =>
      em.delete(ProductMappingEntity, { outerIid: outerIid.trim(), subOuterIid: subOuterIid?.trim() ?? '' }),
    );
    this.invalidate();
    return (res.affected ?? 0) > 0;
  }

  /**
   * Upserts every mapping of a catalog file in one transaction (all or nothing). Mappings in the database but
   * not in the file are kept: they were added by an operator. Unknown supplier instances are refused, naming
   * the entry.
   */
  async loadCatalog(catalog: ProductCatalog): Promise<CatalogLoadResult> {
    const checked = catalog.products.map((p, i) => {
      if (!this.opts.isKnownSupplier(p.supplierInstance)) {
        throw new UnknownSupplierInstanceError(p.supplierInstance, this.opts.knownSuppliers(), catalogEntryLabel(toCatalogEntry(p), i));
      }
      return validateProductMapping(p);
    });
    const load = () =>
      this.db.transaction(async (em) => {
        const counts = { inserted: 0, updated: 0, unchanged: 0 };
        for (const m of checked) {
          const existing = await em.findOne(ProductMappingEntity, { where: { outerIid: m.outerIid, subOuterIid: m.subOuterIid ?? '' } });
          if (existing && sameColumns(existing, m)) counts.unchanged++;
          else {
            await this.write(em, m, existing);
            counts[existing ? 'updated' : 'inserted']++;
          }
        }
        return counts;
      });
    let counts: CatalogLoadResult;
    try {
      counts = await load();
    } catch (err) {
      // Replicas starting together load the same file: the one that lost the insert race finds the rows now.
      if (!isUniqueViolation(err)) throw err;
      counts = await load();
    }
    this.invalidate();
    return counts;
  }

  /** Mappings whose supplier instance is not configured (left over from an older SUPPLIERS_FILE). */
  async orphans(): Promise<StoredProductMapping[]> {
    const rows = await this.db.read((em) => em.find(ProductMappingEntity, { order: { outerIid: 'ASC', subOuterIid: 'ASC' } }));
    return rows.filter((r) => !this.opts.isKnownSupplier(r.supplierInstance)).map(toMapping);
  }

  private check(mapping: ProductMapping): ProductMapping {
    const m = validateProductMapping(mapping);
    if (!this.opts.isKnownSupplier(m.supplierInstance)) {
      throw new UnknownSupplierInstanceError(m.supplierInstance, this.opts.knownSuppliers());
    }
    return m;
  }

  private async write(
    em: EntityManager,
    m: ProductMapping,
    known?: ProductMappingEntity | null,
  ): Promise<{ mapping: StoredProductMapping; created: boolean }> {
    const now = this.opts.clock.now();
    const key = { outerIid: m.outerIid, subOuterIid: m.subOuterIid ?? '' };
    const existing = known !== undefined ? known : await em.findOne(ProductMappingEntity, { where: key });
    if (existing) {
      if (sameColumns(existing, m)) return { mapping: toMapping(existing), created: false };
      await em.update(ProductMappingEntity, key, { ...columnsOf(m), updatedAt: now });
      return { mapping: { ...m, createdAt: existing.createdAt, updatedAt: now }, created: false };
    }
    await em.insert(ProductMappingEntity, { ...key, ...columnsOf(m), createdAt: now, updatedAt: now });
    return { mapping: { ...m, createdAt: now, updatedAt: now }, created: true };
  }

  private async catalog(): Promise<ProductCatalog> {
    const now = this.opts.clock.now();
    if (this.snapshot && now - this.snapshot.loadedAt < this.cacheTtlMs) return this.snapshot.catalog;
    if (this.loading) return this.loading;
    const generation = this.generation;
    const loading = this.db
      .read((em) => em.find(ProductMappingEntity))
      .then((rows) => {
        const catalog: ProductCatalog = { products: rows.map(toMapping) };
        if (generation === this.generation) this.snapshot = { catalog, loadedAt: now };
        return catalog;
      })
      .finally(() => {
        if (this.loading === loading) this.loading = undefined;
      });
    this.loading = loading;
    return loading;
  }
}

/**
 * Reads PRODUCT_CATALOG_FILE (JSON or YAML). A file that cannot be read or breaks a rule stops start-up with
 * a ConfigError naming the entry.
 */
export function readProductCatalogFile(path: string): ProductCatalog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('PRODUCT_CATALOG_FILE', `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}): ${path}`);
  }
  try {
    return parseProductCatalog(text);
  } catch (err) {
    if (err instanceof ProductCatalogError) throw new ConfigError('PRODUCT_CATALOG_FILE', `${path}: ${err.issues.join('; ')}`);
    throw err;
  }
}

/** Refuses, before anything is opened, a catalog naming a supplier instance that is not configured. */
export function checkCatalogSuppliers(catalog: ProductCatalog, knownSuppliers: readonly string[]): void {
  const problems = catalog.products.flatMap((p, i) =>
    knownSuppliers.includes(p.supplierInstance)
      ? []
      : [`${catalogEntryLabel(toCatalogEntry(p), i)}: supplier: unknown supplier instance ${JSON.stringify(p.supplierInstance)}`],
  );
  if (problems.length > 0) {
    throw new ConfigError('PRODUCT_CATALOG_FILE', `${problems.join('; ')} (configured: ${knownSuppliers.join(', ') || 'none'})`);
  }
}
