import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from '../../src/persistence/ids';

describe('newId', () => {
  it('is prefix + 10 time + 16 random Crockford base32 characters, and sorts by time', () => {
    const earlier = newId('wo_', 1_795_000_000_000);
    const later = newId('wo_', 1_795_000_000_001);
    assert.match(earlier, /^wo_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.ok(earlier < later);
    assert.throws(() => newId('x_', -1), RangeError);
  });

  it('never repeats its random part, across many draws from the random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(newId('o_', 1_795_000_000_000).slice(12));
    assert.equal(seen.size, 20_000);
  });
});
