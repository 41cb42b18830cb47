/**
 * The Taobao notice door again, on MariaDB: the same hostile notices, plus the regression examples for fields
 * longer than their columns (strict MariaDB refused the row, so the gateway answered 500 and Taobao would have
 * retried the notice forever; SQLite kept the oversized value).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newTaobaoOrderId, sendFields } from '../taobao/flows/flow-harness';
import { FUZZ_RUNS, ITEM, assertNoPersonalDataInLogs, assertUnchanged, fuzzTimeoutMs, startFuzzGateway, type FuzzGateway } from './fuzz-gateway';
import { runNoticeDoor } from './notice-door';

describe(`Taobao notice door under hostile input (MariaDB, ${FUZZ_RUNS} runs)`, { timeout: fuzzTimeoutMs(1, 200) }, () => {
  let fz: FuzzGateway;
  before(async () => {
    fz = await startFuzzGateway('mysql');
  });
  after(async () => {
    await fz?.stop();
  });

  it('refuses signed fields longer than their columns with a 400 naming the field (regression)', async () => {
    const cases: Array<[string, string]> = [
      ['token', 't'.repeat(65)],
      ['item_title', '门'.repeat(256)],
      ['sku_properties', 'x'.repeat(501)],
      ['seller_nick', '店'.repeat(65)],
      ['outer_iid', 'O'.repeat(65)],
      ['mobile', '+' + '8'.repeat(20)],
    ];
    for (const [field, value] of cases) {
      const before = await fz.snapshot();
      const n = fz.signedNotice('send', sendFields(newTaobaoOrderId(), { outer_iid: ITEM.outerIid, sub_outer_iid: ITEM.subOuterIid, [field]: value }));
      const answer = await fz.postNotice(n.body, n.contentType);
      assert.equal(answer.status, 400, `${field}: ${answer.status} ${answer.text}`);
      assert.equal((JSON.parse(answer.text) as { field: string }).field, field);
      assertUnchanged(before, await fz.snapshot(), field);
    }
  });

  it('refuses every malformed or hostile notice clearly and changes nothing', async () => {
    await runNoticeDoor(fz);
    await fz.assertAlive();
  });

  it('keeps personal numbers out of the log', () => {
    assertNoPersonalDataInLogs(fz);
  });
});
