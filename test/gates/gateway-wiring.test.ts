/**
 * The gate module as the composition root wires it: the real Gateway (SQLite, no TOP URL -> write-off sandbox),
 * admin RPC provisioning, a Redeem, and the spine's WorkRunner confirming the write-off in the background.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { loadConfig } from '../../src/config';
import { Gateway } from '../../src/app';
import { createLogger } from '../../src/observability/logger';
import { OrderState } from '../../src/domain/model';
import { newLedger } from '../../src/domain/ledger';
import { OrderRepository } from '../../src/persistence/order-repository';
import { WriteOffEntity } from '../../src/persistence/entities/write-off.entity';
import {
  AdmissionResult,
  AdmissionServiceClient,
  CheckMethod,
  GateAdminServiceClient,
  ProvisionDeviceRequest,
  RedeemRequest,
  type ProvisionDeviceResponse,
  type RedeemResponse,
} from '../../src/gen/ticketgateway/gates/v1/gates';
import { unary } from '../support/grpc-clients';
import { CATALOG } from './gate-fixture';

test('Gateway wires the gate services and the consume work', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-gates-'));
  writeFileSync(join(dir, 'catalog.yaml'), CATALOG);
  const gateway = await Gateway.start({
    config: loadConfig({
      DATA_DIR: dir,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      PERSONAL_DATA_KEY: 'k'.repeat(32),
      PRODUCT_CATALOG_FILE: join(dir, 'catalog.yaml'),
      LOG_LEVEL: 'silent',
    }),
    logger: createLogger('silent'),
    defaultMetrics: false,
  });
  const admin = new GateAdminServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  const gate = new AdmissionServiceClient(`127.0.0.1:${gateway.grpcPort}`, credentials.createInsecure());
  try {
    const prov = await unary<ProvisionDeviceRequest, ProvisionDeviceResponse>(
      admin,
      'provisionDevice',
      ProvisionDeviceRequest.fromPartial({ deviceCode: 'G1', supplierEnterpriseCode: 'E', scenicSpotCode: 'HS-SOUTH', allowedCheckMethods: [CheckMethod.CHECK_METHOD_CODE], posid: 'POS1' }),
    );
    const now = Date.now();
    await new OrderRepository(gateway.db).insert(
      { taobaoOrderId: '3000000000000001', token: 't', outerIid: 'HS-ADULT', unitPriceFen: 100, totalFeeFen: 200, noticeType: 0, validStart: now - 3_600_000, validEnd: now + 86_400_000, state: OrderState.Issued, ledger: newLedger(2), createdAt: now },
      [{ code: 'WIRE2', total: 2 }],
    );
    const md = new Metadata();
    md.set('x-device-code', 'G1');
    md.set('x-device-secret', prov.deviceSecret);
    const res = await unary<RedeemRequest, RedeemResponse>(gate, 'redeem', RedeemRequest.fromPartial({ presented: { voucherCode: 'WIRE2', orderId: '' }, count: 1, clientNonce: 'w1' }), md);
    assert.equal(res.outcome!.result, AdmissionResult.ADMISSION_RESULT_ADMITTED);
    assert.equal(res.outcome!.remaining, 1);
    let state = '';
    for (let i = 0; i < 100 && state !== 'confirmed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await gateway.db.read((em) => em.findOneBy(WriteOffEntity, { id: res.outcome!.writeOffId })))?.state ?? '';
    }
    assert.equal(state, 'confirmed', 'the spine ran taobao.consume (sandbox) and confirmed the write-off');

    const again = await unary<RedeemRequest, RedeemResponse>(gate, 'redeem', RedeemRequest.fromPartial({ presented: { voucherCode: 'NO-SUCH-CODE', orderId: '' }, count: 1, clientNonce: 'w2' }), md);
    assert.equal(again.outcome!.result, AdmissionResult.ADMISSION_RESULT_UNKNOWN_CODE);
    const scrape = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
    assert.match(scrape, /gate_admissions_total\{result="ADMITTED",method="code"\} 1/);
    assert.match(scrape, /gate_admissions_total\{result="UNKNOWN_CODE",method="code"\} 1/);
  } finally {
    admin.close();
    gate.close();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
