/**
 * Bad input at POST /taobao/notices of a real Gateway on SQLite: FUZZ_RUNS hostile notices (bad GBK, huge fields,
 * missing / extra / duplicated params, forged signs, skewed and replayed timestamps, wrong methods, numbers out of
 * range, `data` that is not JSON). Each is refused clearly, changes no row, and no personal number reaches the log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newTaobaoOrderId } from '../taobao/flows/flow-harness';
import { FUZZ_RUNS, assertNoPersonalDataInLogs, assertUnchanged, fuzzTimeoutMs, rowDelta, startFuzzGateway, type FuzzGateway } from './fuzz-gateway';
import { runNoticeDoor } from './notice-door';

describe(`Taobao notice door under hostile input (SQLite, ${FUZZ_RUNS} runs)`, { timeout: fuzzTimeoutMs(1) }, () => {
  let fz: FuzzGateway;
  before(async () => {
    fz = await startFuzzGateway('sqlite');
  });
  after(async () => {
    await fz?.stop();
  });

  it('refuses every malformed or hostile notice clearly and changes nothing', async () => {
    await runNoticeDoor(fz);
    await fz.assertAlive();
  });

  // The one kind of input that is well-formed but unusable and still leaves rows: a genuine (signed) notice for an
  // order we never received. Taobao would repeat it forever, so it is acknowledged, recorded once, and raised to
  // operators; these are the expected audit rows, and a repeat adds none.
  it('records a signed notice for an unknown order once, as an operator exception, and nothing else', async () => {
    for (const [method, fields] of [
      ['cancel', { cancel_num: '1' }],
      ['order_modify', { sub_method: '2' }],
    ] as const) {
      const n = fz.signedNotice(method, { order_id: newTaobaoOrderId(), token: 'tok-unknown', ...fields });
      const before = await fz.snapshot();
      const first = await fz.postNotice(n.body, n.contentType);
      assert.equal(first.text, '{"code":200}', method);
      const afterFirst = await fz.snapshot();
      assert.deepEqual(rowDelta(before, afterFirst), { inbound_messages: 1, operator_exceptions: 1 }, method);
      const repeat = await fz.postNotice(n.body, n.contentType);
      assert.equal(repeat.text, '{"code":200}', method);
      assertUnchanged(afterFirst, await fz.snapshot(), `${method} repeated`);
    }
  });

  it('keeps personal numbers out of the log', () => {
    assertNoPersonalDataInLogs(fz);
  });
});
