/**
 * The durable work items that call Taobao TOP back: `taobao.send`, `taobao.resend`, `taobao.failsend`. Each
 * repeats safely: the codes travel in the payload (same request every attempt) and "already sent" counts as done.
 * Retryable answers retry with backoff; terminal ones park the item (the runner raises the operator exception).
 */
import type { FailSendPayload } from '../orders/order-issuing';
import { TAOBAO_FLOW_WORK, type FlowLog } from '../orders/order-ports';
import { appendEventStatements } from '../outbox/outbox';
import { OrderEntity } from '../persistence/entities/order.entity';
import type { WorkContext, WorkHandler, WorkOutcome, WorkRunner } from '../work/work-runner';
import { qrImagesFor, type CodesWithQrPayload, type QrImageDeps } from './qr-image-upload';
import { TopRequestError, type TopOutcome } from './top-client';
import type { TaobaoTop } from './top-sandbox';

export interface TaobaoWorkDeps {
  readonly top: TaobaoTop;
  readonly log: FlowLog;
  /** Supplier QR images uploaded with `qrcode.upload` and sent as `qr_images` (only with the real TOP client). */
  readonly qr?: QrImageDeps;
}

/** Registers the three TOP callback kinds on a runner. */
export function registerTaobaoWork(runner: WorkRunner, deps: TaobaoWorkDeps): void {
  runner.register(TAOBAO_FLOW_WORK.taobaoSend, codesHandler(deps, false));
  runner.register(TAOBAO_FLOW_WORK.taobaoResend, codesHandler(deps, true));
  runner.register(TAOBAO_FLOW_WORK.taobaoFailSend, failSendHandler(deps));
}

export function codesHandler(deps: TaobaoWorkDeps, resend: boolean): WorkHandler<CodesWithQrPayload> {
  return async (ctx: WorkContext<CodesWithQrPayload>): Promise<WorkOutcome> => {
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: ctx.payload.orderId } }));
    if (!order) return { outcome: 'park', error: `order ${ctx.payload.orderId} does not exist` };
    if (ctx.payload.codes.length === 0) return { outcome: 'park', error: 'no codes to send' };
    const qr = deps.qr ? await qrImagesFor(ctx, order, deps.qr, deps.log) : undefined;
    if (qr?.kind === 'retry') return { outcome: 'retry', error: qr.error };
    const qrImages = qr?.kind === 'ready' ? qr.qrImages : undefined;
    const req = { orderId: order.taobaoOrderId, verifyCodes: ctx.payload.codes, token: order.token, ...(qrImages ? { qrImages } : {}) };
    const outcome = await guarded(() => (resend ? deps.top.resend(req) : deps.top.send(req)));
    if (outcome.kind === 'ok' || outcome.kind === 'already_done') {
      deps.log.info({ orderId: order.id, resend, outcome: outcome.kind, qrImages: qrImages?.length ?? 0 }, 'codes sent to Taobao');
      // code.sent is written with the item's completion: appended in its own transaction, a crash before the item
      // was marked done re-ran the send ("already sent") and appended a second code.sent (seen in npm run chaos).
      return {
        outcome: 'done',
        record: {
          statements: (em) => appendEventStatements(em, [{ orderId: order.id, type: 'code.sent', payload: { resend, codeCount: ctx.payload.codes.length } }], ctx.clock),
        },
      };
    }
    return failed(outcome);
  };
}

export function failSendHandler(deps: TaobaoWorkDeps): WorkHandler<FailSendPayload> {
  return async (ctx: WorkContext<FailSendPayload>): Promise<WorkOutcome> => {
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: ctx.payload.orderId } }));
    if (!order) return { outcome: 'park', error: `order ${ctx.payload.orderId} does not exist` };
    const outcome = await guarded(() =>
      deps.top.failSend({ orderId: order.taobaoOrderId, errorCode: ctx.payload.errorCode, errorMsg: ctx.payload.errorMsg, token: order.token }),
    );
    if (outcome.kind === 'ok' || outcome.kind === 'already_done') {
      deps.log.info({ orderId: order.id }, 'failsend told to Taobao');
      return { outcome: 'done' };
    }
    return failed(outcome);
  };
}

/** A request we refuse to build (bad data on our side) parks instead of retrying forever. */
async function guarded<B>(call: () => Promise<TopOutcome<B>>): Promise<TopOutcome<B>> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof TopRequestError) return { kind: 'terminal', code: err.code, message: err.message };
    throw err;
  }
}

function failed(outcome: Exclude<TopOutcome<unknown>, { kind: 'ok' } | { kind: 'already_done' }>): WorkOutcome {
  const text = `TOP ${outcome.code}${outcome.subCode ? ` ${outcome.subCode}` : ''}: ${outcome.message}`;
  if (outcome.kind === 'retryable') return { outcome: 'retry', error: text, ambiguous: outcome.ambiguous };
  return { outcome: 'park', error: text };
}

