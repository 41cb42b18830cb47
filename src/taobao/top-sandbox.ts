/**
 * Where TOP calls go when no TOP router is configured (the embedded default): a built-in sandbox that accepts
 * send/resend/failsend, remembers them, and logs every one at warn level, so nothing is silently dropped and an
 * operator sees at once that Taobao was never told. Configure TAOBAO_TOP_URL (+ keys) for the real router.
 */
import { ConfigError, type GatewayConfig } from '../config';
import type { Clock } from '../domain/model';
import type { FlowLog } from '../orders/order-ports';
import { TopClient, type RetCodeResponse, type TopOutcome, type VerifyCode } from './top-client';

/** The TOP calls the channel flows make; `TopClient` is one, `TopSandbox` the other. */
export type TaobaoTop = Pick<TopClient, 'send' | 'resend' | 'failSend'>;

export interface SandboxCall {
  readonly api: 'send' | 'resend' | 'failsend';
  readonly orderId: string;
  readonly verifyCodes?: readonly VerifyCode[];
  readonly errorCode?: number;
  readonly at: number;
}

const MAX_REMEMBERED = 1000;

export class TopSandbox implements TaobaoTop {
  /** The latest calls (bounded), newest last. */
  readonly calls: SandboxCall[] = [];

  constructor(
    private readonly log: FlowLog,
    private readonly clock: Clock,
  ) {}

  async send(req: { orderId: string; verifyCodes: readonly VerifyCode[]; token: string }): Promise<TopOutcome<RetCodeResponse>> {
    return this.accept({ api: 'send', orderId: req.orderId, verifyCodes: req.verifyCodes, at: this.clock.now() });
  }

  async resend(req: { orderId: string; verifyCodes: readonly VerifyCode[]; token: string }): Promise<TopOutcome<RetCodeResponse>> {
    return this.accept({ api: 'resend', orderId: req.orderId, verifyCodes: req.verifyCodes, at: this.clock.now() });
  }

  async failSend(req: { orderId: string; errorCode: number; errorMsg?: string; token: string }): Promise<TopOutcome<RetCodeResponse>> {
    return this.accept({ api: 'failsend', orderId: req.orderId, errorCode: req.errorCode, at: this.clock.now() });
  }

  private accept(call: SandboxCall): TopOutcome<RetCodeResponse> {
    this.calls.push(call);
    if (this.calls.length > MAX_REMEMBERED) this.calls.shift();
    this.log.warn(
      { api: `taobao.vmarket.eticket.${call.api}`, taobaoOrderId: call.orderId, codeCount: call.verifyCodes?.length },
      'TOP sandbox: call accepted and recorded, NOT sent to Taobao (TAOBAO_TOP_URL is not set)',
    );
    return { kind: 'ok', body: { raw: { ret_code: 1, sandbox: true }, retCode: 1 } };
  }
}

/** A documented, public dev key: notices signed with it are accepted only when TAOBAO_NOTICE_KEY is not set. */
export const DEV_NOTICE_KEY = 'ticket-gateway-dev-notice-key-change-me';

/** The notice key to verify with, warning loudly when it is the dev default. */
export function noticeKeyFrom(config: Pick<GatewayConfig, 'TAOBAO_NOTICE_KEY'>, log: FlowLog): string {
  if (config.TAOBAO_NOTICE_KEY) return config.TAOBAO_NOTICE_KEY;
  log.warn({ key: 'TAOBAO_NOTICE_KEY' }, `!!! TAOBAO_NOTICE_KEY is not set: Taobao notices are verified with the PUBLIC dev key "${DEV_NOTICE_KEY}". Set the real notice key before taking traffic. !!!`);
  return DEV_NOTICE_KEY;
}

/** The real TOP client when TAOBAO_TOP_URL is set (then app key, secret, session and code-merchant id are required), else the sandbox. */
export function createTaobaoTop(config: GatewayConfig, deps: { log: FlowLog; clock: Clock }): TaobaoTop {
  if (!config.TAOBAO_TOP_URL) {
    deps.log.warn({}, 'TAOBAO_TOP_URL is not set: TOP calls go to the built-in TOP sandbox and are only logged');
    return new TopSandbox(deps.log, deps.clock);
  }
  const need = (key: 'TAOBAO_APP_KEY' | 'TAOBAO_APP_SECRET' | 'TAOBAO_SESSION' | 'TAOBAO_CODEMERCHANT_ID'): string => {
    const v = config[key];
    if (!v) throw new ConfigError(key, 'is required when TAOBAO_TOP_URL is set');
    return v;
  };
  return new TopClient({
    routerUrl: config.TAOBAO_TOP_URL,
    appKey: need('TAOBAO_APP_KEY'),
    appSecret: need('TAOBAO_APP_SECRET'),
    session: need('TAOBAO_SESSION'),
    codemerchantId: need('TAOBAO_CODEMERCHANT_ID'),
    signMethod: config.TAOBAO_SIGN_METHOD,
    clock: deps.clock,
  });
}
