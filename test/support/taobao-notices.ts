/**
 * Builds Taobao notices exactly as they arrive on the wire: signed with the notice key over GBK bytes,
 * form-encoded with every byte percent-escaped from GBK (or UTF-8 when asked), Chinese values included.
 */
import iconv from 'iconv-lite';
import { signNotice } from '../../src/taobao/notice-signature';
import { formatTaobaoTime } from '../../src/taobao/taobao-time';

export const SAMPLE_NOTICE_KEY = '219f9cb7eceb40fcd4aa016a61993423';

/** The real `send` notice from external-apis.md §1.2 (sign 6C1346D63291FC26939D8CC5757BE65D with SAMPLE_NOTICE_KEY). */
export const SAMPLE_SEND_PARAMS: Readonly<Record<string, string>> = Object.freeze({
  consume_type: '2',
  item_title: '银子岩门票',
  method: 'send',
  mobile: '18077113872',
  num: '1',
  num_iid: '522071639483',
  order_id: '1525658026040792',
  seller_nick: 'haaron_john',
  send_type: '2',
  sku_properties: '门票种类:成人票;门票类型:电子票',
  sms_template:
    '验证码$code.您已成功订购haaron_john提供的银子岩门票,有效期2016/04/12至2016/04/12,消费时请出示本短信以验证.如有疑问,请联系卖家.',
  sub_method: '1',
  sub_outer_iid: '2',
  taobao_sid: '92333234',
  timestamp: '2016-04-12 04:04:37',
  token: 'd3077e5d86c75a2142f87161a4b4c3ea',
  type: '0',
  valid_ends: '2016-04-12 23:59:59',
  valid_start: '2016-04-12 00:00:00',
  weeks: '[1,2,3,4,5,6,7]',
});
export const SAMPLE_SEND_SIGN = '6C1346D63291FC26939D8CC5757BE65D';

export interface BuildNoticeOptions {
  /** Wire charset; default GBK like Taobao. UTF-8 also declares `charset=utf-8` in the content type. */
  readonly charset?: 'gbk' | 'utf-8';
  /** Instant for `timestamp` when fields do not set one; default now. */
  readonly now?: number;
  /** Replace the computed sign (forgery tests); `null` leaves the notice unsigned. */
  readonly sign?: string | null;
}

export interface BuiltNotice {
  readonly body: Buffer;
  readonly contentType: string;
  /** The parameters as signed (with `sign`). */
  readonly params: Record<string, string>;
}

export function buildNotice(
  method: string,
  fields: Readonly<Record<string, string>>,
  noticeKey: string,
  options: BuildNoticeOptions = {},
): BuiltNotice {
  const params: Record<string, string> = {
    timestamp: formatTaobaoTime(options.now ?? Date.now()),
    ...fields,
    method,
  };
  delete params['sign'];
  const sign = options.sign === undefined ? signNotice(params, noticeKey) : options.sign;
  if (sign !== null) params['sign'] = sign;
  const charset = options.charset ?? 'gbk';
  return {
    body: encodeForm(params, charset),
    contentType:
      charset === 'gbk'
        ? 'application/x-www-form-urlencoded'
        : 'application/x-www-form-urlencoded; charset=utf-8',
    params,
  };
}

/** Form-encodes with the given charset: unreserved ASCII as is, space as '+', every other byte as %XX. */
export function encodeForm(params: Readonly<Record<string, string>>, charset: 'gbk' | 'utf-8'): Buffer {
  const text = Object.entries(params)
    .map(([k, v]) => `${escapeBytes(iconv.encode(k, charset))}=${escapeBytes(iconv.encode(v, charset))}`)
    .join('&');
  return Buffer.from(text, 'ascii');
}

function escapeBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9_.~-]/.test(c)) out += c;
    else if (b === 0x20) out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
