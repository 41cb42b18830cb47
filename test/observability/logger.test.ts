import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, log: createLogger('debug', stream as unknown as import('pino').DestinationStream) };
}

test('logs are JSON with level, time, message and bound fields', () => {
  const { lines, log } = capture();
  log.child({ requestId: 'r-1' }).info({ orderId: 'o_1' }, 'order received');
  const rec = JSON.parse(lines[0]!);
  assert.equal(rec.level, 'info');
  assert.equal(rec.msg, 'order received');
  assert.equal(rec.requestId, 'r-1');
  assert.equal(rec.orderId, 'o_1');
  assert.ok(!Number.isNaN(Date.parse(rec.time)));
});

test('mobile and ID-card numbers never appear in clear: by field name, inside strings, in messages and errors', () => {
  const { lines, log } = capture();
  const mobile = '13812345678';
  const idCard = '11010519491231002X';
  log.info({ mobile, idCard, note: `visitor ${mobile} with ${idCard}`, nested: { list: [`tel:${mobile}`] } }, `placing order for ${mobile}`);
  log.error({ err: new Error(`supplier refused ${idCard}`) }, 'failed');
  const text = lines.join('\n');
  assert.ok(!text.includes(mobile), text);
  assert.ok(!text.includes(idCard), text);
  assert.ok(!text.includes('12345678'), 'no long tail of the mobile either');
  const first = JSON.parse(lines[0]!);
  assert.equal(first.mobile, '[redacted]');
  assert.match(first.note, /138\*{4}5678/);
});
