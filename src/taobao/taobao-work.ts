/**
 * The durable work items that call Taobao TOP back: `taobao.send`, `taobao.resend`, `taobao.failsend`. Each
 * repeats safely: the codes travel in the payload (same request every attempt) and "already sent" counts as done.
 * Retryable answers retry with backoff; terminal ones park the item (the runner raises the operator exception).
 */
import type { FailSendPayload } from '../orders/order-issuing';
import type { CodesCallPayload } from '../orders/order-codes';
import { TAOBAO_FLOW_WORK, type FlowLog } from '../orders/order-ports';
import { appendEvent } from '../outbox/outbox';
import { OrderEntity } from '../persistence/entities/order.entity';
import type { WorkContext, WorkHandler, WorkOutcome, WorkRunner } from '../work/work-runner';
import { TopRequestError, type TopOutcome } from './top-client';
import type { TaobaoTop } from './top-sandbox';

export interface TaobaoWorkDeps {
  readonly top: TaobaoTop;
  readonly log: FlowLog;
}

/** Registers the three TOP callback kinds on a runner. */
export function registerTaobaoWork(runner: WorkRunner, deps: TaobaoWorkDeps): void {
  runner.register(TAOBAO_FLOW_WORK.taobaoSend, codesHandler(deps, false));
  runner.register(TAOBAO_FLOW_WORK.taobaoResend, codesHandler(deps, true));
  runner.register(TAOBAO_FLOW_WORK.taobaoFailSend, failSendHandler(deps));
}

export function codesHandler(deps: TaobaoWorkDeps, resend: boolean): WorkHandler<CodesCallPayload> {
  return async (ctx: WorkContext<CodesCallPayload>): Promise<WorkOutcome> => {
    const order = await ctx.db.read((em) => em.findOne(OrderEntity, { where: { id: ctx.payload.orderId } }));
    if (!order) return { outcome: 'park', error: `order ${ctx.payload.orderId} does not exist` };
    if (ctx.payload.codes.length === 0) return { outcome: 'park', error: 'no codes to send' };
    const req = { orderId: order.taobaoOrderId, verifyCodes: ctx.payload.codes, token: order.token };
    const outcome = await guarded(() => (resend ? deps.top.resend(req) : deps.top.send(req)));
    if (outcome.kind === 'ok' || outcome.kind === 'already_done') {
      await ctx.db.transaction((em) =>
        appendEvent(em, { orderId: order.id, type: 'code.sent', payload: { resend, codeCount: ctx.payload.codes.length } }, ctx.clock),
      );
      deps.log.info({ orderId: order.id, resend, outcome: outcome.kind }, 'codes sent to Taobao');
      return { outcome: 'done' };
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

