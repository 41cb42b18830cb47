import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maskIdCard, maskMobile, redactPersonalData } from '../../src/domain/personal-data';

describe('masking', () => {
  it('masks a mobile to 138****5678', () => {
    assert.equal(maskMobile('13812345678'), '138****5678');
  });

  it('masks an ID card keeping the first 3 and last 4', () => {
    assert.equal(maskIdCard('11010119900307123X'), '110***********123X');
    assert.equal(maskIdCard('110101900307123'), '110********7123');
  });

  it('masks everything when too short to keep ends safely', () => {
    assert.equal(maskMobile('1234567'), '*******');
  });
});

describe('redactPersonalData', () => {
  it('masks mobiles and ID cards inside free text', () => {
    const text = 'buyer 13812345678 id=11010119900307123X old id 110101900307123, done';
    const out = redactPersonalData(text);
    assert.equal(out, 'buyer 138****5678 id=110***********123X old id 110********7123, done');
  });

  it('masks a lowercase x check digit and mobiles in JSON or query strings', () => {
    assert.equal(redactPersonalData('{"idCard":"11010119900307123x"}'), '{"idCard":"110***********123x"}');
    assert.equal(redactPersonalData('mobile=15912345678&x=1'), 'mobile=159****5678&x=1');
  });

  it('masks mobiles written with a country code or separators', () => {
    assert.equal(redactPersonalData('+86 13812345678'), '+86 138****5678');
    assert.equal(redactPersonalData('8613812345678'), '86138****5678');
    assert.equal(redactPersonalData('138-1234-5678 or 138 1234 5678'), '138-****-5678 or 138 **** 5678');
  });

  it('leaves non-mobiles and longer numbers alone', () => {
    const text = 'ts 1717171717171 order 2345678901234567890 price 12812345 landline 02112345678 x 12345678901';
    assert.equal(redactPersonalData(text), text);
  });

  it('never leaves the clear number in the output (property over generated numbers)', () => {
    for (let i = 0; i < 200; i++) {
      const mobile = `1${3 + (i % 7)}${String(100000000 + i * 7919).slice(-9)}`;
      const id = `${String(110101 + i).padStart(6, '0')}1990${String((i % 12) + 1).padStart(2, '0')}15${String(i % 1000).padStart(3, '0')}${i % 11 === 10 ? 'X' : i % 10}`;
      const out = redactPersonalData(`m:${mobile};id:${id}.`);
      assert.ok(!out.includes(mobile), out);
      assert.ok(!out.includes(id), out);
    }
  });
});
