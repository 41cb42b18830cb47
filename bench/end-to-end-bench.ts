/**
 * Section 4, end to end: a signed `send` notice POSTed to the gateway (child process) -> the gateway places the
 * order at the sandbox supplier -> `taobao.vmarket.eticket.send` arrives at the TopSimulator (a real HTTP server in
 * this process that verifies TOP signatures). Notices go out on a steady schedule; the figure is the time from
 * sending the notice to the simulator receiving the `eticket.send` for that order.
 */
import { performance, type RecordableHistogram } from 'node:perf_hooks';
import { NOTICE_ACK } from '../src/taobao/notice-parser';
import { buildNotice } from '../test/support/taobao-notices';
import type { RecordedCall, TopSimulator } from '../test/support/top-simulator';
import { newTaobaoOrderId, sendFields } from '../test/taobao/flows/flow-harness';
import { keepAliveAgent, post } from './http-post';
import { newHistogram, openLoop, recordMs, type LoadResult } from './load';

export const E2E_RATE = 25;
const E2E_MS = 10_000;
const ARRIVAL_TIMEOUT_MS = 30_000;

export interface EndToEndFigures {
  readonly notices: LoadResult;
  readonly latency: RecordableHistogram;
  readonly sent: number;
  readonly arrived: number;
}

export async function benchEndToEnd(opts: { noticeUrl: URL; noticeKey: string; top: TopSimulator }): Promise<EndToEndFigures> {
  const { top } = opts;
  const sentAt = new Map<string, number>();
  const latency = newHistogram();
  let arrived = 0;
  // The simulator records every call it accepted; time-stamp the `eticket.send` ones as they are recorded.
  const calls = top.calls;
  const record = calls.push.bind(calls);
  calls.push = (...items: RecordedCall[]): number => {
    const now = performance.now();
    for (const call of items) {
      const started = call.method === 'taobao.vmarket.eticket.send' ? sentAt.get(call.params['order_id'] ?? '') : undefined;
      if (started !== undefined) {
        sentAt.delete(call.params['order_id']!);
        recordMs(latency, now - started);
        arrived++;
      }
    }
    return record(...items);
  };
  const agent = keepAliveAgent(8);
  try {
    let sent = 0;
    const notices = await openLoop({
      ratePerSecond: E2E_RATE,
      durationMs: E2E_MS,
      maxInFlight: 200,
      send: async () => {
        const orderId = newTaobaoOrderId();
        const fields = sendFields(orderId);
        top.addOrder({ orderId, token: fields['token']!, num: Number(fields['num']) });
        const notice = buildNotice('send', fields, opts.noticeKey);
        sentAt.set(orderId, performance.now());
        const answer = await post(agent, opts.noticeUrl, notice.body, notice.contentType);
        if (answer.status !== 200 || answer.body !== NOTICE_ACK.ok) {
          sentAt.delete(orderId);
          throw new Error(`notice answered ${answer.status} ${answer.body.slice(0, 200)}`);
        }
        sent++;
      },
    });
    const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
    while (arrived < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return { notices, latency, sent, arrived };
  } finally {
    agent.destroy();
    calls.push = record;
  }
}
