/**
 * An issued order placed at the Lianhe simulator (real signed HTTP) whose Taobao side lives in the TOP simulator:
 * the set-up reconciliation and state-mapping tests share.
 */
import assert from 'node:assert/strict';
import { newLedger } from '../../src/domain/ledger';
import { OrderState } from '../../src/domain/model';
import type { Database } from '../../src/persistence/database';
import { OrderRepository } from '../../src/persistence/order-repository';
import type { LianheAdapter } from '../../src/suppliers/lianhe/lianhe-adapter';
import type { TopClient } from '../../src/taobao/top-client';
import type { LianheSimulator } from '../support/supplier-simulators/lianhe-simulator';
import type { TopSimulator } from '../support/top-simulator';

export const TOP_IDENTITY = { appKey: '23456789', appSecret: 'top-secret-for-reconciliation', session: 'sess-rec', codemerchantId: '1000123' };
export const DAY = 86_400_000;

export interface World {
  db: Database;
  lianhe: LianheAdapter;
  sim: LianheSimulator;
  top: TopSimulator;
  topClient: TopClient;
}

let seq = 0;

/** An issued order placed at Lianhe; Taobao knows it and (unless told otherwise) holds its code. */
export async function issued(w: World, units: number, opts: { sendCodeToTaobao?: boolean } = {}): Promise<{ orderId: string; taobaoOrderId: string; code: string }> {
  const orderId = `o_rec${String(++seq).padStart(4, '0')}${Math.random().toString(36).slice(2, 7)}`;
  const taobaoOrderId = `7${Date.now() % 1e9}${String(seq).padStart(4, '0')}`;
  const placed = await w.lianhe.placeOrder({ ourOrderCode: orderId, visitorName: '李四', mobile: '13900139000', supplierTicketType: '9001', quantity: units, unitPriceFen: 5000, visitDate: '2026-11-01' });
  assert.equal(placed.kind, 'placed');
  if (placed.kind !== 'placed') throw new Error('unreachable');
  const code = placed.vouchers[0]!.code;
  w.top.addOrder({ orderId: taobaoOrderId, token: 'tk', num: units });
  if (opts.sendCodeToTaobao !== false) {
    const sent = await w.topClient.send({ orderId: taobaoOrderId, token: 'tk', verifyCodes: [{ code, num: units }] });
    assert.equal(sent.kind, 'ok');
  }
  await new OrderRepository(w.db).insert(
    {
      id: orderId,
      taobaoOrderId,
      token: 'tk',
      outerIid: 'LH-ITEM',
      unitPriceFen: 5000,
      totalFeeFen: 5000 * units,
      noticeType: 0,
      mobileMasked: '139****9000',
      validStart: Date.now() - DAY,
      validEnd: Date.now() + 30 * DAY,
      supplier: 'lh-test',
      supplierOrderId: placed.supplierOrderId,
      state: OrderState.Issued,
      ledger: newLedger(units),
      createdAt: Date.now(),
    },
    [{ code, total: units }],
  );
  return { orderId, taobaoOrderId, code };
}

