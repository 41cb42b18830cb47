/**
 * What an `error_response` from TOP means for the caller: done already, try again, or stop and tell operators.
 * Sub-codes come from external-apis.md §1.5, platform codes from §1.6. Anything not listed here is
 * `terminal` - an operator looks at it; an unknown answer is never taken for success.
 */

export type TopErrorKind = 'already_done' | 'retryable' | 'terminal';

export interface TopSubCodeRule {
  readonly subCode: string;
  readonly kind: TopErrorKind;
  /** Only for these API methods (full TOP name); every method when absent. */
  readonly methods?: readonly string[];
}

const SEND = 'taobao.vmarket.eticket.send';
const RESEND = 'taobao.vmarket.eticket.resend';
const CONSUME = 'taobao.vmarket.eticket.consume';

export const TOP_SUB_CODE_RULES: readonly TopSubCodeRule[] = [
  // Codes for this order were already sent: our earlier send went through, its answer was lost.
  { subCode: 'isv.eticket-send-error:code-alreay-send', kind: 'already_done', methods: [SEND, RESEND] },
  // We reuse a consume's serial number only when retrying that same consume, so Taobao already applied it.
  { subCode: 'isv.eticket-invalid-parameter:duplicate-consume-serial-num', kind: 'already_done', methods: [CONSUME] },
  // Another call on the same order is in flight at Taobao; back off and repeat.
  { subCode: 'isv.eticket-service-unavailable:order-is-processing', kind: 'retryable' },
  // Taobao's own service failed; it says to retry.
  { subCode: 'isv.eticket-service-unavailable:op-failed', kind: 'retryable' },
  // Order refunded, closed or otherwise not in a state for this call: retrying cannot help (S14/S15 stop here).
  { subCode: 'isv.eticket-order-status-error:invalid-order-status', kind: 'terminal' },
  // Token does not belong to the order: our data is wrong.
  { subCode: 'isv.eticket-token-error:invalid-token', kind: 'terminal' },
  { subCode: 'isv.missing-parameter:token', kind: 'terminal' },
  { subCode: 'isv.missing-parameter:code', kind: 'terminal' },
  // Nothing left that can be resent (all used, refunded or expired).
  { subCode: 'isv.eticket-resend-error:no-can-resend-code', kind: 'terminal' },
  // The code is used up, voided or unknown: the admission must be refused.
  { subCode: 'isv.eticket-consume-error:code-not-available', kind: 'terminal' },
  // Outside the validity window.
  { subCode: 'isv.eticket-code-error:code-not-in-valid-time', kind: 'terminal' },
  // The gate device is not registered for this code merchant / is malformed: configuration.
  { subCode: 'isv.eticket-invalid-posid:invalid-pos-for-codemerchant', kind: 'terminal' },
  { subCode: 'isv.eticket-invalid-parameter:invalid-posid', kind: 'terminal' },
  // Order unknown, not ours, or the session is not an e-voucher seller: configuration or data error.
  { subCode: 'isv.eticket-order-not-found:invalid-orderid', kind: 'terminal' },
  { subCode: 'isv.eticket-seller-error:invalid-eticket-seller', kind: 'terminal' },
  { subCode: 'isv.eticket-privilege-error:order-not-belongto-seller', kind: 'terminal' },
  // Asked for more units than the code has, or a count Taobao refuses.
  { subCode: 'isv.eticket-order-consume-num:consume-num-invalid', kind: 'terminal' },
  { subCode: 'isv.eticket-order-consume-num:consume-num-overflow', kind: 'terminal' },
  // Serial number outside [A-Za-z0-9_]{1,100}: a bug on our side.
  { subCode: 'isv.eticket-invalid-parameter:invalid-consume-serial-num', kind: 'terminal' },
  // Reverse of a serial Taobao never recorded. After a timed-out consume this may mean the consume never
  // happened - but it may also still be in flight, so the write-off flow decides, not this table.
  { subCode: 'isv.eticket-reverse-error:consume-serial-num-not-found', kind: 'terminal' },
];

export interface TopPlatformCodeRule {
  readonly code: number;
  readonly kind: TopErrorKind;
}

/** Platform `code`s, used when the sub-code did not decide. */
export const TOP_PLATFORM_CODE_RULES: readonly TopPlatformCodeRule[] = [
  // App Call Limited: rate limit, passes with time.
  { code: 7, kind: 'retryable' },
  // Service Currently Unavailable [inferred: common TOP code, not in our reference]: transient.
  { code: 10, kind: 'retryable' },
  // Insufficient ISV Permissions: the app lacks the e-voucher API grant.
  { code: 11, kind: 'terminal' },
  // Remote Service Error: business sub-codes carry the meaning (isp.* is retryable, see below); bare 15 is unknown.
  { code: 15, kind: 'terminal' },
  // Invalid Signature: wrong secret or signing bug - retrying signs the same way.
  { code: 25, kind: 'terminal' },
  // Invalid Session: the code merchant's session expired; an operator must re-authorise.
  { code: 27, kind: 'terminal' },
  // Invalid App Key [inferred]: configuration.
  { code: 29, kind: 'terminal' },
  // Invalid Timestamp: our clock is off by more than 10 min; operators must fix the clock, then replay.
  { code: 31, kind: 'terminal' },
  // Missing Required Arguments / Invalid Arguments: a bug in the request we built.
  { code: 40, kind: 'terminal' },
  { code: 41, kind: 'terminal' },
];

/**
 * Decides an error answer. Order: an exact sub-code rule for this method, then any `isp.*` sub-code
 * (Taobao's server side: retry), then the platform code, else terminal.
 */
export function classifyTopError(apiMethod: string, code: number | undefined, subCode: string | undefined): TopErrorKind {
  if (subCode) {
    const rule = TOP_SUB_CODE_RULES.find((r) => r.subCode === subCode && (!r.methods || r.methods.includes(apiMethod)));
    if (rule) return rule.kind;
    if (subCode.startsWith('isp.')) return 'retryable';
    // An isv.* sub-code we do not know: never guess success, never retry blindly.
    if (subCode.startsWith('isv.')) return 'terminal';
  }
  const platform = TOP_PLATFORM_CODE_RULES.find((r) => r.code === code);
  return platform ? platform.kind : 'terminal';
}

/** HTTP status without a TOP envelope: 5xx and 429 are transient, any other status is ours to fix. */
export function classifyHttpStatus(status: number): TopErrorKind {
  return status >= 500 || status === 429 || status === 408 ? 'retryable' : 'terminal';
}
