/** The Taobao channel as the composition root wires it: Gateway.start with a TOP router configured. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { Gateway } from '../../../src/app';
import { configSchema } from '../../../src/config';
import { CheckMethod, OrderState } from '../../../src/domain/model';
import { createLogger } from '../../../src/observability/logger';
import { OrderEntity } from '../../../src/persistence/entities/order.entity';
import { DbProductDirectory } from '../../../src/suppliers/product-directory';
import { buildNotice } from '../../support/taobao-notices';
import { TopSimulator } from '../../support/top-simulator';
import { ITEM, NOTICE_KEY, newTaobaoOrderId, sendFields, TOP_IDENTITY } from './flow-harness';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

it('Gateway.start serves POST /taobao/notices and its work runner calls the configured TOP router', async () => {
  const top = new TopSimulator(TOP_IDENTITY);
  await top.start();
  cleanups.push(() => top.stop());
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-taobao-gw-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = configSchema.parse({
    DATA_DIR: dataDir,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    LOG_LEVEL: 'silent',
    SHUTDOWN_GRACE_MS: '1000',
    TAOBAO_TOP_URL: top.url,
    TAOBAO_APP_KEY: TOP_IDENTITY.appKey,
    TAOBAO_APP_SECRET: TOP_IDENTITY.appSecret,
    TAOBAO_SESSION: TOP_IDENTITY.session,
    TAOBAO_CODEMERCHANT_ID: TOP_IDENTITY.codemerchantId,
    TAOBAO_NOTICE_KEY: NOTICE_KEY,
  });
  const gw = await Gateway.start({ config, logger: createLogger('silent'), defaultMetrics: false });
  cleanups.push(() => gw.stop());
  const directory = new DbProductDirectory(gw.db, { clock: { now: Date.now }, isKnownSupplier: (c) => c === 'sandbox', knownSuppliers: () => ['sandbox'] });
  await directory.upsert({
    outerIid: ITEM.outerIid,
    subOuterIid: ITEM.subOuterIid,
    supplierInstance: 'sandbox',
    supplierTicketType: ITEM.ticketType,
    scenicSpotCode: 'HS-GATE',
    checkMethods: [CheckMethod.Code],
    realNameRequired: false,
    validity: { kind: 'days_from_visit', days: 1 },
    expiryRefund: { allowed: true, ratioBasisPoints: 10_000 },
  });

  const tid = newTaobaoOrderId();
  const fields = sendFields(tid);
  top.addOrder({ orderId: tid, token: fields.token!, num: 2 });
  const notice = buildNotice('send', fields, NOTICE_KEY);
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}/taobao/notices`, { method: 'POST', headers: { 'content-type': notice.contentType }, body: notice.body });
  assert.equal(await res.text(), '{"code":200}');

  const deadline = Date.now() + 15_000;
  while (!top.order(tid).sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(top.order(tid).sent, true, 'eticket.send reached the TOP router');
  const order = await gw.db.read((em) => em.findOne(OrderEntity, { where: { taobaoOrderId: tid } }));
  assert.equal(order?.state, OrderState.Issued);
  const metrics = await gw.metrics.registry.metrics();
  assert.match(metrics, /taobao_notices_total\{method="send",result="ok"\} 1/);
});
