/**
 * A real gRPC server on 127.0.0.1:0 serving the gate services over a fresh test database, with a settable clock,
 * a product catalog (the real parser and resolver), and helpers to store issued orders and provision devices.
 */
import { credentials, Metadata, type Client } from '@grpc/grpc-js';
import type { DatabaseKind } from '../../src/persistence/database';
import { CheckMethod, OrderState, type Clock, type Ledger } from '../../src/domain/model';
import { newLedger } from '../../src/domain/ledger';
import { createLogger } from '../../src/observability/logger';
import { GatewayMetrics } from '../../src/observability/metrics';
import { GrpcServer } from '../../src/grpc/grpc-server';
import { OrderRepository, type OrderView } from '../../src/persistence/order-repository';
import { PersonalDataProtector } from '../../src/security/personal-data-protector';
import { parseProductCatalog, resolveProduct } from '../../src/suppliers/product-catalog';
import { AdmissionDesk, type ProductLookup } from '../../src/gates/admission-desk';
import { DeviceRegistry } from '../../src/gates/device-registry';
import { gateAdminServiceHandlers } from '../../src/grpc/gate-admin-service';
import { admissionServiceHandlers } from '../../src/grpc/gate-admission-service';
import {
  AdmissionServiceClient,
  AdmissionServiceService,
  GateAdminServiceClient,
  GateAdminServiceService,
} from '../../src/gen/ticketgateway/gates/v1/gates';
import { openTestDatabase, type TestDatabase } from '../support/database';
import { unary } from '../support/grpc-clients';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const T0 = Date.UTC(2026, 10, 20, 1, 0, 0);

export const CATALOG = `
products:
  - outer_iid: HS-ADULT
    supplier: sandbox
    ticket_type: T1
    scenic_spot: HS-SOUTH
    check_methods: [CODE, QR, ID_CARD]
    real_name_required: true
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 8000 }
  - outer_iid: HS-CODE-ONLY
    supplier: sandbox
    ticket_type: T2
    scenic_spot: HS-SOUTH
    check_methods: [CODE]
    real_name_required: false
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 8000 }
  - outer_iid: WEST-ADULT
    supplier: sandbox
    ticket_type: T3
    scenic_spot: WEST-LAKE
    check_methods: [CODE, QR, ID_CARD]
    real_name_required: true
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 8000 }
`;

export class MutableClock implements Clock {
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
}

export interface GateFixture {
  readonly tdb: TestDatabase;
  readonly clock: MutableClock;
  readonly protector: PersonalDataProtector;
  readonly devices: DeviceRegistry;
  readonly desk: AdmissionDesk;
  readonly products: ProductLookup;
  readonly orders: OrderRepository;
  readonly port: number;
  readonly admin: GateAdminServiceClient;
  admission(deviceCode: string, secret: string): { call<Req, Res>(method: string, req: Req): Promise<Res>; client: Client };
  issueOrder(o: { outerIid?: string; units: number; code: string; qr?: string; idCard?: string; visitorName?: string; validFrom?: number; validTo?: number; vouchers?: Array<{ code: string; total: number; status?: 'active' | 'void'; remaining?: number }>; taobaoOrderId?: string; state?: OrderState; ledger?: Ledger }): Promise<OrderView>;
  provision(deviceCode: string, opts?: { scenicSpot?: string; methods?: CheckMethod[]; posid?: string }): Promise<string>;
  stop(): Promise<void>;
}

let seq = 0;

export async function startGateFixture(kind: DatabaseKind): Promise<GateFixture> {
  const tdb = await openTestDatabase(kind);
  const clock = new MutableClock(T0);
  const protector = new PersonalDataProtector('g'.repeat(32));
  const catalog = parseProductCatalog(CATALOG);
  const products: ProductLookup = { resolve: async (outer, sub) => resolveProduct(catalog, outer ?? undefined, sub ?? undefined) };
  const devices = new DeviceRegistry(tdb.db, { clock, cacheMs: 0 });
  const desk = new AdmissionDesk({ db: tdb.db, products, protector, clock });
  const orders = new OrderRepository(tdb.db);
  const log = createLogger('silent');
  const grpc = new GrpcServer(log, new GatewayMetrics({ defaultMetrics: false }));
  grpc.addService(GateAdminServiceService, gateAdminServiceHandlers({ devices }));
  grpc.addService(AdmissionServiceService, admissionServiceHandlers({ desk, devices, clock }));
  const port = await grpc.listen(0, '127.0.0.1');
  const admin = new GateAdminServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const clients: Client[] = [admin];

  return {
    tdb,
    clock,
    protector,
    devices,
    desk,
    products,
    orders,
    port,
    admin,
    admission(deviceCode, secret) {
      const client = new AdmissionServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
      clients.push(client);
      return {
        client,
        call<Req, Res>(method: string, req: Req): Promise<Res> {
          const md = new Metadata();
          md.set('x-device-code', deviceCode);
          md.set('x-device-secret', secret);
          return unary<Req, Res>(client, method, req, md);
        },
      };
    },
    async issueOrder(o) {
      seq++;
      const idCard = o.idCard ? protector.protectIdCard(o.idCard) : undefined;
      return orders.insert(
        {
          taobaoOrderId: o.taobaoOrderId ?? `${1525658026040000 + seq}${Math.floor(Math.random() * 1000)}`,
          token: `tok${seq}`,
          outerIid: o.outerIid ?? 'HS-ADULT',
          itemTitle: '黄山门票',
          unitPriceFen: 10_000,
          totalFeeFen: 10_000 * o.units,
          noticeType: 0,
          idCardMasked: idCard?.masked ?? null,
          idCardHash: idCard?.hash ?? null,
          idCardCipher: idCard?.cipher ?? null,
          visitorName: o.visitorName ?? null,
          validStart: o.validFrom ?? T0 - HOUR,
          validEnd: o.validTo ?? T0 + DAY,
          supplier: 'sandbox',
          supplierOrderId: `SBX${seq}`,
          state: o.state ?? OrderState.Issued,
          ledger: o.ledger ?? newLedger(o.units),
          createdAt: T0 - 2 * HOUR + seq,
        },
        o.vouchers ?? [{ code: o.code, total: o.units, qrPayload: o.qr ?? null }],
      );
    },
    async provision(deviceCode, opts = {}) {
      const { secret } = await devices.provision({
        deviceCode,
        supplierEnterpriseCode: 'ENT1',
        scenicSpotCode: opts.scenicSpot ?? 'HS-SOUTH',
        allowedCheckMethods: opts.methods ?? [CheckMethod.Code, CheckMethod.Qr, CheckMethod.IdCard],
        posid: opts.posid ?? `POS_${deviceCode}`,
      });
      return secret;
    },
    async stop() {
      for (const c of clients) c.close();
      await grpc.close(1000);
      await tdb.drop();
    },
  };
}
