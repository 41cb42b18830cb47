import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signTopRequest, topSigningText, verifyTopSignature } from '../../src/taobao/top-signature';

// Taobao open platform's published example (open.taobao.com docId=101617), secret "helloworld".
const TOP_DOC_PARAMS = {
  method: 'taobao.item.seller.get',
  app_key: '12345678',
  session: 'test',
  timestamp: '2016-01-01 12:00:00',
  format: 'json',
  v: '2.0',
  sign_method: 'md5',
  fields: 'num_iid,title,nick,price,num',
  num_iid: '11223344',
};

describe('TOP signature', () => {
  it('md5 reproduces the open platform documentation example', () => {
    assert.equal(
      topSigningText(TOP_DOC_PARAMS),
      'app_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.getnum_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0',
    );
    assert.equal(signTopRequest(TOP_DOC_PARAMS, 'helloworld', 'md5'), '66987CB115214E59E6EC978214934FB8');
  });

  it('hmac is HMAC-MD5 keyed by the secret over the bare concatenation (RFC 2202 case 1)', () => {
    // Concatenation of {Hi: " There"} is "Hi There", RFC 2202's first HMAC-MD5 input.
    const key = '\x0b'.repeat(16);
    assert.equal(signTopRequest({ Hi: ' There' }, key, 'hmac'), '9294727A3638BB1C13F48EF8158BFC9D');
  });

  it('ignores sign and empty values; hashes UTF-8', () => {
    const withSign = { ...TOP_DOC_PARAMS, sign: 'X', partner_id: '' };
    assert.equal(signTopRequest(withSign, 'helloworld', 'md5'), '66987CB115214E59E6EC978214934FB8');
    const chinese = signTopRequest({ error_msg: '景区关闭' }, 's', 'md5');
    assert.notEqual(chinese, signTopRequest({ error_msg: '????' }, 's', 'md5'));
  });

  it('verifies md5 and hmac signatures and refuses the other method or secret', () => {
    const md5 = { ...TOP_DOC_PARAMS, sign: signTopRequest(TOP_DOC_PARAMS, 'helloworld', 'md5') };
    assert.equal(verifyTopSignature(md5, 'helloworld', 'md5'), true);
    assert.equal(verifyTopSignature(md5, 'helloworld', 'hmac'), false);
    assert.equal(verifyTopSignature(md5, 'other', 'md5'), false);
    assert.equal(verifyTopSignature({ ...TOP_DOC_PARAMS }, 'helloworld', 'md5'), false);
  });
});
