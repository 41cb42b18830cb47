import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noticeSigningText, signNotice, verifyNoticeSignature } from '../../src/taobao/notice-signature';
import { SAMPLE_NOTICE_KEY, SAMPLE_SEND_PARAMS, SAMPLE_SEND_SIGN } from '../support/taobao-notices';

describe('notice signature (GBK MD5, notice key prefixed)', () => {
  it('reproduces the published §1.2 test vector', () => {
    assert.equal(signNotice(SAMPLE_SEND_PARAMS, SAMPLE_NOTICE_KEY), SAMPLE_SEND_SIGN);
  });

  it('the same text hashed as UTF-8 does not give the vector (GBK is required)', () => {
    const text = noticeSigningText(SAMPLE_SEND_PARAMS, SAMPLE_NOTICE_KEY);
    const utf8 = createHash('md5').update(text, 'utf8').digest('hex').toUpperCase();
    assert.notEqual(utf8, SAMPLE_SEND_SIGN);
    assert.ok(utf8.startsWith('61DE8C96'), 'matches the UTF-8 digest the reference recorded');
  });

  it('signing text: key prefixed only, keys in ordinal order, no separators', () => {
    const text = noticeSigningText({ b: '2', a: '1', B: '3' }, 'K');
    assert.equal(text, 'KB3a1b2');
  });

  it('excludes sign and skips empty values', () => {
    const withExtras = { ...SAMPLE_SEND_PARAMS, sign: 'WHATEVER', outer_iid: '' };
    assert.equal(signNotice(withExtras, SAMPLE_NOTICE_KEY), SAMPLE_SEND_SIGN);
  });

  it('verifies a good sign (any hex case) and refuses a wrong, missing or truncated one', () => {
    assert.equal(verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS, sign: SAMPLE_SEND_SIGN }, SAMPLE_NOTICE_KEY), true);
    assert.equal(
      verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS, sign: SAMPLE_SEND_SIGN.toLowerCase() }, SAMPLE_NOTICE_KEY),
      true,
    );
    assert.equal(verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS, sign: SAMPLE_SEND_SIGN }, 'another-key'), false);
    assert.equal(verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS }, SAMPLE_NOTICE_KEY), false);
    assert.equal(
      verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS, sign: SAMPLE_SEND_SIGN.slice(0, 31) }, SAMPLE_NOTICE_KEY),
      false,
    );
    assert.equal(
      verifyNoticeSignature({ ...SAMPLE_SEND_PARAMS, num: '2', sign: SAMPLE_SEND_SIGN }, SAMPLE_NOTICE_KEY),
      false,
    );
  });
});
