import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  classifyHttpStatus,
  classifyTopError,
  TOP_SUB_CODE_RULES,
} from '../../src/taobao/top-error-classification';

const SEND = 'taobao.vmarket.eticket.send';
const CONSUME = 'taobao.vmarket.eticket.consume';
const REVERSE = 'taobao.vmarket.eticket.reverse';

describe('TOP error classification', () => {
  const cases: Array<[string, number | undefined, string | undefined, string]> = [
    [SEND, 15, 'isv.eticket-send-error:code-alreay-send', 'already_done'],
    ['taobao.vmarket.eticket.resend', 15, 'isv.eticket-send-error:code-alreay-send', 'already_done'],
    [CONSUME, 15, 'isv.eticket-invalid-parameter:duplicate-consume-serial-num', 'already_done'],
    // The duplicate-serial success shortcut belongs to consume only.
    [REVERSE, 15, 'isv.eticket-invalid-parameter:duplicate-consume-serial-num', 'terminal'],
    [CONSUME, 15, 'isv.eticket-send-error:code-alreay-send', 'terminal'],
    [SEND, 15, 'isv.eticket-service-unavailable:op-failed', 'retryable'],
    [CONSUME, 15, 'isv.eticket-service-unavailable:order-is-processing', 'retryable'],
    [SEND, 15, 'isp.top-remote-connection-timeout', 'retryable'],
    [SEND, undefined, 'isp.unknown-error', 'retryable'],
    [SEND, 7, undefined, 'retryable'],
    [SEND, 15, 'isv.eticket-order-status-error:invalid-order-status', 'terminal'],
    [SEND, 15, 'isv.eticket-token-error:invalid-token', 'terminal'],
    ['taobao.vmarket.eticket.resend', 15, 'isv.eticket-resend-error:no-can-resend-code', 'terminal'],
    [CONSUME, 15, 'isv.eticket-consume-error:code-not-available', 'terminal'],
    [CONSUME, 15, 'isv.eticket-invalid-posid:invalid-pos-for-codemerchant', 'terminal'],
    [CONSUME, 15, 'isv.eticket-invalid-parameter:invalid-posid', 'terminal'],
    [REVERSE, 15, 'isv.eticket-reverse-error:consume-serial-num-not-found', 'terminal'],
    [SEND, 25, undefined, 'terminal'],
    [SEND, 27, undefined, 'terminal'],
    [SEND, 11, undefined, 'terminal'],
    [SEND, 40, 'isv.missing-parameter:order_id', 'terminal'],
    [SEND, 41, undefined, 'terminal'],
    [SEND, 31, undefined, 'terminal'],
    // Unknown answers go to operators, never to success and never into blind retries.
    [SEND, 15, 'isv.eticket-brand-new-error:never-seen', 'terminal'],
    [SEND, 15, undefined, 'terminal'],
    [SEND, 999, undefined, 'terminal'],
    [SEND, undefined, 'something.else', 'terminal'],
  ];
  for (const [method, code, subCode, expected] of cases) {
    it(`${method.split('.').pop()} code=${code} ${subCode ?? '-'} -> ${expected}`, () => {
      assert.equal(classifyTopError(method, code, subCode), expected);
    });
  }

  it('every sub-code in the table appears once per method scope', () => {
    const seen = new Set<string>();
    for (const r of TOP_SUB_CODE_RULES) {
      const key = `${r.subCode}|${(r.methods ?? ['*']).join(',')}`;
      assert.ok(!seen.has(key), key);
      seen.add(key);
    }
    assert.ok(TOP_SUB_CODE_RULES.length >= 20);
  });

  it('HTTP statuses without an envelope', () => {
    assert.equal(classifyHttpStatus(500), 'retryable');
    assert.equal(classifyHttpStatus(503), 'retryable');
    assert.equal(classifyHttpStatus(429), 'retryable');
    assert.equal(classifyHttpStatus(404), 'terminal');
    assert.equal(classifyHttpStatus(400), 'terminal');
  });
});
