/**
 * ticketgateway.admin.v1.ProductAdminService: operators manage product mappings (Taobao item -> supplier
 * ticket type). Wire with `server.addService(ProductAdminServiceService, productAdminServiceHandlers({ products }))`.
 * The rules are the catalog file's (see DbProductDirectory); a refusal is INVALID_ARGUMENT naming the proto field.
 */
import { status } from '@grpc/grpc-js';
import { CheckMethod as DomainCheckMethod } from '../domain/model';
import {
  CheckMethod as ProtoCheckMethod,
  type DeleteProductMappingRequest,
  type DeleteProductMappingResponse,
  type GetProductMappingRequest,
  type GetProductMappingResponse,
  type ListProductMappingsRequest,
  type ListProductMappingsResponse,
  type ProductMapping as ProtoProductMapping,
  type UpsertProductMappingRequest,
  type UpsertProductMappingResponse,
} from '../gen/ticketgateway/admin/v1/product_admin';
import type { ProductMapping, ValidityPolicy } from '../suppliers/product-catalog';
import {
  InvalidMappingPageTokenError,
  InvalidProductMappingError,
  MAX_PAGE_SIZE,
  UnknownSupplierInstanceError,
  type DbProductDirectory,
  type StoredProductMapping,
} from '../suppliers/product-directory';
import { GrpcFault } from './grpc-errors';

const TO_PROTO_METHOD: Record<DomainCheckMethod, ProtoCheckMethod> = {
  [DomainCheckMethod.Code]: ProtoCheckMethod.CHECK_METHOD_CODE,
  [DomainCheckMethod.Qr]: ProtoCheckMethod.CHECK_METHOD_QR,
  [DomainCheckMethod.IdCard]: ProtoCheckMethod.CHECK_METHOD_ID_CARD,
};

const FROM_PROTO_METHOD = new Map<ProtoCheckMethod, DomainCheckMethod>(
  Object.entries(TO_PROTO_METHOD).map(([d, p]) => [p, d as DomainCheckMethod]),
);

/** Catalog-file field (as the validator names it) -> proto field of UpsertProductMappingRequest. */
const CATALOG_TO_PROTO_FIELD: Readonly<Record<string, string>> = {
  outer_iid: 'mapping.outer_iid',
  sub_outer_iid: 'mapping.sub_outer_iid',
  supplier: 'mapping.supplier_instance',
  ticket_type: 'mapping.supplier_ticket_type',
  scenic_spot: 'mapping.scenic_spot_code',
  check_methods: 'mapping.check_methods',
  real_name_required: 'mapping.real_name_required',
  'validity.days': 'mapping.validity.days_from_visit.days',
  'validity.start': 'mapping.validity.fixed.start',
  'validity.end': 'mapping.validity.fixed.end',
  validity: 'mapping.validity',
  'expiry_refund.ratio_bp': 'mapping.expiry_refund.ratio_basis_points',
  'expiry_refund.allowed': 'mapping.expiry_refund.allowed',
  expiry_refund: 'mapping.expiry_refund',
};

export function protoFieldOf(catalogField: string): string {
  if (CATALOG_TO_PROTO_FIELD[catalogField]) return CATALOG_TO_PROTO_FIELD[catalogField];
  // 'check_methods.1' and the like: the longest known prefix.
  const prefix = Object.keys(CATALOG_TO_PROTO_FIELD)
    .filter((k) => catalogField.startsWith(`${k}.`))
    .sort((a, b) => b.length - a.length)[0];
  return prefix ? CATALOG_TO_PROTO_FIELD[prefix]! : 'mapping';
}

const MAX_CODE = 64;

export function toProtoMapping(m: StoredProductMapping): ProtoProductMapping {
  return {
    outerIid: m.outerIid,
    subOuterIid: m.subOuterIid ?? '',
    supplierInstance: m.supplierInstance,
    supplierTicketType: m.supplierTicketType,
    scenicSpotCode: m.scenicSpotCode,
    checkMethods: m.checkMethods.map((c) => TO_PROTO_METHOD[c]),
    realNameRequired: m.realNameRequired,
    validity:
      m.validity.kind === 'fixed'
        ? { fixed: { start: m.validity.start, end: m.validity.end } }
        : { daysFromVisit: { days: m.validity.days } },
    expiryRefund: { allowed: m.expiryRefund.allowed, ratioBasisPoints: m.expiryRefund.ratioBasisPoints },
    createTime: new Date(m.createdAt),
    updateTime: new Date(m.updatedAt),
  };
}

/** Proto -> domain; shape problems only (the rules are checked by the directory). */
function fromProtoMapping(p: ProtoProductMapping | undefined): ProductMapping {
  if (!p) throw GrpcFault.invalidArgument('mapping', 'is required');
  const checkMethods = p.checkMethods.map((c) => {
    const m = FROM_PROTO_METHOD.get(c);
    if (!m) throw GrpcFault.invalidArgument('mapping.check_methods', `holds an unknown or unspecified check method (${c})`);
    return m;
  });
  let validity: ValidityPolicy;
  if (p.validity?.daysFromVisit) validity = { kind: 'days_from_visit', days: p.validity.daysFromVisit.days };
  else if (p.validity?.fixed) validity = { kind: 'fixed', start: p.validity.fixed.start, end: p.validity.fixed.end };
  else throw GrpcFault.invalidArgument('mapping.validity', 'is required (days_from_visit or fixed)');
  return {
    outerIid: p.outerIid,
    subOuterIid: p.subOuterIid.trim() === '' ? undefined : p.subOuterIid,
    supplierInstance: p.supplierInstance,
    supplierTicketType: p.supplierTicketType,
    scenicSpotCode: p.scenicSpotCode,
    checkMethods,
    realNameRequired: p.realNameRequired,
    validity,
    // Absent: no refund on expiry.
    expiryRefund: { allowed: p.expiryRefund?.allowed ?? false, ratioBasisPoints: p.expiryRefund?.ratioBasisPoints ?? 0 },
  };
}

function keyOf(req: { outerIid: string; subOuterIid: string }): { outerIid: string; subOuterIid?: string } {
  const outerIid = req.outerIid.trim();
  const subOuterIid = req.subOuterIid.trim();
  if (outerIid === '') throw GrpcFault.invalidArgument('outer_iid', 'is required');
  if (outerIid.length > MAX_CODE) throw GrpcFault.invalidArgument('outer_iid', `is longer than ${MAX_CODE} characters`);
  if (subOuterIid.length > MAX_CODE) throw GrpcFault.invalidArgument('sub_outer_iid', `is longer than ${MAX_CODE} characters`);
  return { outerIid, subOuterIid: subOuterIid === '' ? undefined : subOuterIid };
}

function describeKey(k: { outerIid: string; subOuterIid?: string }): string {
  return k.subOuterIid === undefined ? k.outerIid : `${k.outerIid}/${k.subOuterIid}`;
}

export function productAdminServiceHandlers(deps: { products: DbProductDirectory }) {
  return {
    async upsertProductMapping(req: UpsertProductMappingRequest): Promise<UpsertProductMappingResponse> {
      const mapping = fromProtoMapping(req.mapping);
      try {
        const res = await deps.products.upsert(mapping);
        return { mapping: toProtoMapping(res.mapping), created: res.created };
      } catch (err) {
        if (err instanceof InvalidProductMappingError) {
          const first = err.issues[0]!;
          throw GrpcFault.invalidArgument(protoFieldOf(first.field), err.issues.length > 1 ? `${first.message} (and ${err.issues.length - 1} more: ${err.issues.slice(1).map((i) => `${protoFieldOf(i.field)}: ${i.message}`).join('; ')})` : first.message);
        }
        if (err instanceof UnknownSupplierInstanceError) {
          throw new GrpcFault(
            status.INVALID_ARGUMENT,
            `mapping.supplier_instance: unknown supplier instance ${JSON.stringify(err.supplierInstance)} (configured: ${err.known.join(', ') || 'none'})`,
            'UNKNOWN_SUPPLIER_INSTANCE',
            { field: 'mapping.supplier_instance' },
          );
        }
        throw err;
      }
    },

    async getProductMapping(req: GetProductMappingRequest): Promise<GetProductMappingResponse> {
      const key = keyOf(req);
      const found = await deps.products.get(key.outerIid, key.subOuterIid);
      if (!found) throw GrpcFault.notFound('product mapping', describeKey(key));
      return { mapping: toProtoMapping(found) };
    },

    async listProductMappings(req: ListProductMappingsRequest): Promise<ListProductMappingsResponse> {
      if (req.pageSize < 0) throw GrpcFault.invalidArgument('page_size', 'must not be negative');
      if (req.pageSize > MAX_PAGE_SIZE) throw GrpcFault.invalidArgument('page_size', `must be at most ${MAX_PAGE_SIZE}`);
      if (req.supplierInstance.length > MAX_CODE) throw GrpcFault.invalidArgument('supplier_instance', `is longer than ${MAX_CODE} characters`);
      try {
        const page = await deps.products.list({
          supplierInstance: req.supplierInstance.trim() || undefined,
          pageSize: req.pageSize || undefined,
          pageToken: req.pageToken || undefined,
        });
        return { mappings: page.mappings.map(toProtoMapping), nextPageToken: page.nextPageToken ?? '' };
      } catch (err) {
        if (err instanceof InvalidMappingPageTokenError) throw GrpcFault.invalidArgument('page_token', 'is not a token this service issued');
        throw err;
      }
    },

    async deleteProductMapping(req: DeleteProductMappingRequest): Promise<DeleteProductMappingResponse> {
      const key = keyOf(req);
      const deleted = await deps.products.delete(key.outerIid, key.subOuterIid);
      if (!deleted) throw GrpcFault.notFound('product mapping', describeKey(key));
      return {};
    },
  };
}
