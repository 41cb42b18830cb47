import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  PersonalDataDecryptError,
  PersonalDataProtector,
  WeakPersonalDataKeyError,
} from '../../src/security/personal-data-protector';

const KEY_A = 'k'.repeat(16) + 'personal-data-key-A';
const KEY_B = 'k'.repeat(16) + 'personal-data-key-B';
const MOBILE = '13812345678';
const ID_CARD = '11010119900307123x';

describe('PersonalDataProtector', () => {
  const a = new PersonalDataProtector(KEY_A);
  const b = new PersonalDataProtector(KEY_B);

  test('a key shorter than 32 characters is refused, and the error does not echo it', () => {
    assert.throws(
      () => new PersonalDataProtector('short-secret-1234'),
      (err: unknown) => err instanceof WeakPersonalDataKeyError && !err.message.includes('short-secret-1234'),
    );
    assert.doesNotThrow(() => new PersonalDataProtector('x'.repeat(32)));
  });

  test('hash is HMAC-SHA256 hex, stable for one key, different under another key', () => {
    const h = a.hash(MOBILE);
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(a.hash(MOBILE), h);
    assert.equal(new PersonalDataProtector(KEY_A).hash(MOBILE), h, 'a second instance with the same key agrees');
    assert.notEqual(b.hash(MOBILE), h, 'keyed: another key gives another hash');
    assert.notEqual(a.hash('13812345679'), h);
    assert.ok(!h.includes(MOBILE));
  });

  test('hash ignores blanks and the case of the ID-card check letter', () => {
    assert.equal(a.hash(ID_CARD), a.hash(ID_CARD.toUpperCase()));
    assert.equal(a.hash('138 1234 5678'), a.hash(MOBILE));
    assert.equal(a.matches('11010119900307123X', a.hash(ID_CARD)), true);
    assert.equal(a.matches('110101199003071230', a.hash(ID_CARD)), false);
    assert.equal(a.matches(MOBILE, 'not-hex'), false);
  });

  test('encrypt/decrypt round trip for any text; a fresh IV each time', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 64 }), (value) => {
        assert.equal(a.decrypt(a.encrypt(value)), value);
      }),
      { numRuns: 200 },
    );
    const c1 = a.encrypt(MOBILE);
    const c2 = a.encrypt(MOBILE);
    assert.notEqual(c1, c2);
    assert.match(c1, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.ok(!c1.includes(MOBILE));
  });

  test('a tampered cipher text is rejected, wherever the change is', () => {
    const cipher = a.encrypt(MOBILE);
    const parts = cipher.split('.');
    for (let p = 1; p < 4; p++) {
      const changed = [...parts];
      const s = changed[p]!;
      // Flip one character in the middle of the part to another base64url character.
      const i = Math.floor(s.length / 2);
      changed[p] = s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      assert.throws(() => a.decrypt(changed.join('.')), PersonalDataDecryptError, `part ${p}`);
    }
  });

  test('malformed, unknown-version and other-key cipher texts are rejected without echoing the value', () => {
    const cipher = a.encrypt(MOBILE);
    for (const bad of ['', 'v1.abc', 'v2' + cipher.slice(2), cipher + '.x', cipher.replace(/\.[^.]+$/, '.!!!'), b.encrypt(MOBILE)]) {
      assert.throws(
        () => a.decrypt(bad),
        (err: unknown) => err instanceof PersonalDataDecryptError && !err.message.includes(MOBILE),
        bad,
      );
    }
  });

  test('protectMobile / protectIdCard give mask, hash and cipher consistent with each other', () => {
    const m = a.protectMobile(MOBILE);
    assert.equal(m.masked, '138****5678');
    assert.equal(m.hash, a.hash(MOBILE));
    assert.equal(a.decrypt(m.cipher), MOBILE);
    const id = a.protectIdCard(ID_CARD);
    assert.equal(id.masked, '110***********123X');
    assert.equal(a.decrypt(id.cipher), ID_CARD.toUpperCase());
    assert.equal(id.hash, a.hash(ID_CARD));
  });

  test('the key fingerprint identifies the key without revealing it', () => {
    assert.equal(a.keyFingerprint(), new PersonalDataProtector(KEY_A).keyFingerprint());
    assert.notEqual(a.keyFingerprint(), b.keyFingerprint());
    assert.ok(!KEY_A.includes(a.keyFingerprint()));
  });
});
