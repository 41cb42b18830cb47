/**
 * The state table is exhaustive over every outside state the references name: the Alipay states of seeds/003,
 * the Taobao refund states and Zhiyoubao check states of external-apis.md, Lianhe's default codes and the
 * adapters' neutral statuses — read from the documents themselves, so a state added there fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ORDER_STATES, OrderState } from '../../src/domain/model';
import { DEFAULT_LIANHE_ORDER_STATUS, LianheStatusMapping } from '../../src/suppliers/lianhe/lianhe-status';
import { NEUTRAL_SUPPLIER_STATUSES } from '../../src/suppliers/supplier-adapter';
import { interpretRetreatStatus } from '../../src/suppliers/zhiyoubao/zhiyoubao-adapter';
import { lianheRows, OUTSIDE_SYSTEMS, STATE_MAPPING_VERSION, STATE_TABLE, StateTable, stateTable } from '../../src/state-mapping/state-table';

const REFERENCE = '/work/shared/reference';
const seed003 = () => {
  const dir = join(REFERENCE, 'seeds');
  const name = readdirSync(dir).find((f) => f.startsWith('003_'));
  assert.ok(name, 'seed 003 present');
  return readFileSync(join(dir, name), 'utf8');
};
const apis = () => readFileSync(join(REFERENCE, 'external-apis.md'), 'utf8');

/** Upper-snake state codes in a text (the seed's typo "REFUND_ CLOSED" is not one: it ends in "_"). */
function stateCodes(text: string): Set<string> {
  return new Set(text.match(/\b(?:WAIT|TRADE|REFUND|SELLER)_[A-Z_]*[A-Z]\b/g) ?? []);
}

test('every Alipay trade and refund state of seeds/003 is mapped', () => {
  const codes = stateCodes(seed003());
  assert.ok(codes.size >= 11, `found ${[...codes].join(',')}`);
  for (const code of codes) {
    const asTrade = stateTable.lookup('alipay', 'trade_status', code);
    const asRefund = stateTable.lookup('alipay', 'refund_status', code);
    assert.ok(asTrade || asRefund, `alipay ${code} is mapped`);
  }
  // And the table holds no Alipay state the seed does not name.
  for (const v of [...stateTable.values('alipay', 'trade_status'), ...stateTable.values('alipay', 'refund_status')]) assert.ok(codes.has(v), `${v} is in the seed`);
});

test('every Taobao/Alipay state of external-apis.md §4 and Zhiyoubao state of §2 is mapped', () => {
  const doc = apis();
  const s4 = doc.slice(doc.indexOf('## 4.'), doc.indexOf('## Sources'));
  const taobaoRefund = /Taobao Trade\.refund_status: `([^`]+)`/.exec(s4);
  assert.ok(taobaoRefund);
  const refundStates = taobaoRefund[1]!.split(/,\s*/);
  assert.equal(refundStates.length, 7);
  for (const v of refundStates) assert.ok(stateTable.lookup('taobao', 'refund_status', v), `taobao refund_status ${v}`);
  for (const code of stateCodes(s4.replace(taobaoRefund[0], ''))) {
    if (code === 'TRADE_REFUND') continue; // a search filter of trades.sold.get, not a state
    assert.ok(
      stateTable.lookup('alipay', 'trade_status', code) || stateTable.lookup('alipay', 'refund_status', code) || stateTable.lookup('taobao', 'trade_status', code),
      `§4 ${code} is mapped`,
    );
  }
  const check = /checkStatus \(([a-z_|]+)\)/.exec(doc);
  assert.ok(check);
  assert.deepEqual(check[1]!.split('|').sort(), stateTable.values('zhiyoubao', 'checkStatus').sort());
  const audit = /`auditStatus` = `(\w+)` \\\| `(\w+)`/.exec(doc);
  assert.ok(audit, 'ZYB auditStatus values in §2.5');
  assert.deepEqual([audit[1], audit[2]].sort(), stateTable.values('zhiyoubao', 'auditStatus').sort());
  const finish = /订单完结通知 \(finish\) \| `order_code`, `status` = `(\w+)`\(检票完成\) \\\| `(\w+)`/.exec(doc);
  assert.ok(finish, 'ZYB finish statuses in §2.5');
  assert.deepEqual([finish[1], finish[2]].sort(), stateTable.values('zhiyoubao', 'finish_status').sort());
  // The retreat descriptions quoted in §2.4, and the adapter reads each the way the table means it.
  const retreat = /`description` like ([^;\n]+?) \[/.exec(doc);
  assert.ok(retreat);
  const texts = [...retreat[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  assert.deepEqual(texts.sort(), stateTable.values('zhiyoubao', 'retreat_description').sort());
  for (const text of texts) {
    const m = stateTable.lookup('zhiyoubao', 'retreat_description', text)!;
    const code = m.refund === 'pending_audit' ? 6 : 0;
    const read = interpretRetreatStatus({ code, description: text, root: {} } as unknown as Parameters<typeof interpretRetreatStatus>[0]);
    assert.equal(read.kind === 'pending' ? 'pending_audit' : read.kind, m.refund, `adapter and table agree on ${text}`);
  }
});

test('Lianhe codes (default and configured) and every neutral status map onto our states', () => {
  for (const code of Object.keys(DEFAULT_LIANHE_ORDER_STATUS)) assert.ok(stateTable.lookup('lianhe', 'orderStatus', code), `lianhe ${code}`);
  for (const n of NEUTRAL_SUPPLIER_STATUSES) assert.ok(stateTable.lookup('supplier', 'neutral_status', n), `neutral ${n}`);
  // An instance's configuration adds codes and removes defaults; its rows follow.
  const configured = new LianheStatusMapping({ orderStatus: { '3': 'issued', '8': null } });
  const rows = lianheRows(configured.codes());
  assert.ok(rows.some((r) => r.value === '3' && r.ours.includes(OrderState.Issued)));
  assert.ok(!rows.some((r) => r.value === '8'));
  assert.equal(stateTable.lookup('lianhe', 'orderStatus', '3'), undefined, 'code 3 is deliberately unknown by default');
});

test('the table is well formed: valid systems and states, no duplicates, every state of ours reachable', () => {
  assert.equal(typeof STATE_MAPPING_VERSION, 'number');
  assert.doesNotThrow(() => new StateTable(STATE_TABLE));
  assert.throws(() => new StateTable([...STATE_TABLE, STATE_TABLE[0]!]), /twice/);
  for (const e of STATE_TABLE) {
    assert.ok(OUTSIDE_SYSTEMS.includes(e.system));
    assert.ok(e.meaning.length > 0);
    for (const s of e.ours) assert.ok(ORDER_STATES.includes(s), `${e.system} ${e.value}: ${s}`);
  }
  const neutralCover = new Set(STATE_TABLE.filter((e) => e.system === 'supplier').flatMap((e) => e.ours));
  for (const s of ORDER_STATES) assert.ok(neutralCover.has(s), `some supplier status agrees with ${s}`);
  // Spot checks of meaning.
  assert.equal(stateTable.consistent('zhiyoubao', 'checkStatus', 'un_check', OrderState.Consumed), false);
  assert.equal(stateTable.consistent('zhiyoubao', 'checkStatus', 'checked', OrderState.Consumed), true);
  assert.equal(stateTable.consistent('supplier', 'neutral_status', 'refunded', OrderState.Refunded), true);
  assert.equal(stateTable.consistent('supplier', 'neutral_status', 'refunded', OrderState.Issued), false);
  assert.deepEqual(stateTable.lookup('taobao', 'trade_status', 'WAIT_BUYER_PAY')!.ours, [], 'unpaid: no live order of ours');
  assert.equal(stateTable.consistent('lianhe', 'orderStatus', '42', OrderState.Issued), undefined, 'unknown: no verdict, never a default');
  assert.equal(stateTable.lookup('alipay', 'refund_status', 'REFUND_ CLOSED'), undefined);
});
