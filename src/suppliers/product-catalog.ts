/**
 * Product catalog: which supplier ticket type a Taobao item stands for. Pure types + validation;
 * persistence comes later. The Taobao key is the seller's product code: `outer_iid` of the item and,
 * for a SKU, `sub_outer_iid` (the SKU code wins over the item code).
 *
 * File format (JSON or YAML):
 *   products:
 *     - outer_iid: HS-ADULT            # required
 *       sub_outer_iid: HS-ADULT-WKND   # optional
 *       supplier: zyb-huangshan        # supplier instance code
 *       ticket_type: PST20170001       # supplier ticket type code (票型编码)
 *       scenic_spot: HS-GATE-SOUTH     # scenic spot (网点) code, gate devices belong to it
 *       check_methods: [CODE, QR, ID_CARD]
 *       real_name_required: true
 *       validity: { kind: days_from_visit, days: 1 }   # or { kind: fixed, start: 2025-01-01, end: 2025-12-31 }
 *       expiry_refund: { allowed: true, ratio_bp: 8000 }
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CheckMethod } from '../domain/model';

export type ValidityPolicy =
  /** Valid on the visit date and the following `days - 1` days (business calendar, GMT+8). */
  | { readonly kind: 'days_from_visit'; readonly days: number }
  /** A fixed calendar window, both ends inclusive, `YYYY-MM-DD` in GMT+8. */
  | { readonly kind: 'fixed'; readonly start: string; readonly end: string };

export interface ProductMapping {
  readonly outerIid: string;
  readonly subOuterIid?: string;
  readonly supplierInstance: string;
  readonly supplierTicketType: string;
  readonly scenicSpotCode: string;
  readonly checkMethods: readonly CheckMethod[];
  readonly realNameRequired: boolean;
  readonly validity: ValidityPolicy;
  readonly expiryRefund: { readonly allowed: boolean; readonly ratioBasisPoints: number };
}

export interface ProductCatalog {
  readonly products: readonly ProductMapping[];
}

export class ProductCatalogError extends Error {
  override name = 'ProductCatalogError';
  constructor(readonly issues: readonly string[]) {
    super(`invalid product catalog:\n  ${issues.join('\n  ')}`);
  }
}

const code = z.string().trim().min(1).max(64);
const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD')
  .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d), 'not a calendar date');

const validitySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('days_from_visit'), days: z.number().int().min(1).max(3660) }).strict(),
  z
    .object({ kind: z.literal('fixed'), start: isoDate, end: isoDate })
    .strict()
    .refine((v) => v.start <= v.end, { message: 'validity end is before start', path: ['end'] }),
]);

const entrySchema = z
  .object({
    outer_iid: code,
    sub_outer_iid: code.optional(),
    supplier: code,
    ticket_type: code,
    scenic_spot: code,
    check_methods: z
      .array(z.enum([CheckMethod.Code, CheckMethod.Qr, CheckMethod.IdCard]))
      .min(1, 'at least one check method')
      .refine((m) => new Set(m).size === m.length, 'check methods repeat'),
    real_name_required: z.boolean(),
    validity: validitySchema,
    expiry_refund: z
      .object({
        allowed: z.boolean(),
        // Taobao: the ratio is at most 100%.
        ratio_bp: z.number().int().min(0).max(10_000),
      })
      .strict(),
  })
  .strict()
  .refine((p) => !p.check_methods.includes(CheckMethod.IdCard) || p.real_name_required, {
    message: 'ID_CARD check needs real_name_required: true (no ID numbers otherwise)',
    path: ['check_methods'],
  });

const catalogSchema = z.object({ products: z.array(z.unknown()) }).strict();

function keyOf(outerIid: string, subOuterIid: string | undefined): string {
  return subOuterIid === undefined ? outerIid : `${outerIid}\u0000${subOuterIid}`;
}

/** Parses and validates a catalog; every problem is reported, each naming its entry. */
export function parseProductCatalog(text: string): ProductCatalog {
  let doc: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new ProductCatalogError([`not valid JSON/YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const top = catalogSchema.safeParse(doc);
  if (!top.success) throw new ProductCatalogError(['expected an object with a "products" list and nothing else']);

  const issues: string[] = [];
  const products: ProductMapping[] = [];
  const seen = new Map<string, number>();
  top.data.products.forEach((raw, i) => {
    const label = entryLabel(raw, i);
    const parsed = entrySchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const where = issue.path.length ? issue.path.join('.') : '(entry)';
        issues.push(`${label}: ${where}: ${issue.message}`);
      }
      return;
    }
    const p = parsed.data;
    const key = keyOf(p.outer_iid, p.sub_outer_iid);
    const first = seen.get(key);
    if (first !== undefined) {
      issues.push(`${label}: duplicates products[${first}] (same outer_iid/sub_outer_iid)`);
      return;
    }
    seen.set(key, i);
    products.push({
      outerIid: p.outer_iid,
      subOuterIid: p.sub_outer_iid,
      supplierInstance: p.supplier,
      supplierTicketType: p.ticket_type,
      scenicSpotCode: p.scenic_spot,
      checkMethods: p.check_methods,
      realNameRequired: p.real_name_required,
      validity: p.validity,
      expiryRefund: { allowed: p.expiry_refund.allowed, ratioBasisPoints: p.expiry_refund.ratio_bp },
    });
  });
  if (issues.length > 0) throw new ProductCatalogError(issues);
  return { products };
}

function entryLabel(raw: unknown, i: number): string {
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const outer = typeof r['outer_iid'] === 'string' ? ` outer_iid=${r['outer_iid']}` : '';
  const sub = typeof r['sub_outer_iid'] === 'string' ? ` sub_outer_iid=${r['sub_outer_iid']}` : '';
  return `products[${i}]${outer || sub ? ` (${(outer + sub).trim()})` : ''}`;
}

/** The mapping for a Taobao item: the SKU's code wins over the item's; none -> undefined. */
export function resolveProduct(catalog: ProductCatalog, outerIid: string | undefined, subOuterIid?: string): ProductMapping | undefined {
  const skuCode = subOuterIid?.trim() || undefined;
  const itemCode = outerIid?.trim() || undefined;
  if (itemCode && skuCode) {
    const exact = catalog.products.find((p) => p.outerIid === itemCode && p.subOuterIid === skuCode);
    if (exact) return exact;
  }
  if (skuCode) {
    // The SKU's own code may be all the seller filled in: match it as a product code on its own.
    const bySku = catalog.products.find((p) => p.subOuterIid === undefined && p.outerIid === skuCode);
    if (bySku) return bySku;
  }
  if (itemCode) return catalog.products.find((p) => p.outerIid === itemCode && p.subOuterIid === undefined);
  return undefined;
}
