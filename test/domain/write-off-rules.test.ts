import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REVERSE_WINDOW_MS, canReverseWriteOff, reverseDeadline, type WriteOff } from '../../src/domain/write-off-rules';

const MIN = 60_000;
const admittedAt = Date.UTC(2025, 4, 1, 2, 0, 0);
const writeOff: WriteOff = { serial: 'wo_1', count: 2, admittedAt, reversedAt: null };

function reason(r: ReturnType<typeof canReverseWriteOff>): string {
  return r.ok ? 'OK' : r.reason;
}

describe('write-off reversal', () => {
  it('is allowed at 1h59 and at exactly 2h, refused at 2h01 and one millisecond after 2h', () => {
    assert.equal(reason(canReverseWriteOff(writeOff, 2, admittedAt + 119 * MIN)), 'OK');
    assert.equal(reason(canReverseWriteOff(writeOff, 2, admittedAt + REVERSE_WINDOW_MS)), 'OK');
    assert.equal(reason(canReverseWriteOff(writeOff, 2, admittedAt + REVERSE_WINDOW_MS + 1)), 'REVERSE_WINDOW_PASSED');
    assert.equal(reason(canReverseWriteOff(writeOff, 2, admittedAt + 121 * MIN)), 'REVERSE_WINDOW_PASSED');
  });

  it('is allowed right away', () => {
    assert.equal(reason(canReverseWriteOff(writeOff, 2, admittedAt)), 'OK');
  });

  it('needs exactly the consumed count', () => {
    assert.equal(reason(canReverseWriteOff(writeOff, 1, admittedAt + MIN)), 'COUNT_MISMATCH');
    assert.equal(reason(canReverseWriteOff(writeOff, 3, admittedAt + MIN)), 'COUNT_MISMATCH');
  });

  it('happens only once, and that is reported before anything else', () => {
    const reversed = { ...writeOff, reversedAt: admittedAt + MIN };
    assert.equal(reason(canReverseWriteOff(reversed, 2, admittedAt + 2 * MIN)), 'ALREADY_REVERSED');
    assert.equal(reason(canReverseWriteOff(reversed, 1, admittedAt + 3 * REVERSE_WINDOW_MS)), 'ALREADY_REVERSED');
  });

  it('reports the deadline when the window has passed', () => {
    const r = canReverseWriteOff(writeOff, 2, admittedAt + 3 * 60 * MIN);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.details?.deadline, admittedAt + 2 * 60 * MIN);
    assert.equal(reverseDeadline(writeOff), admittedAt + 2 * 60 * MIN);
  });
});
