/**
 * Consume and reverse for the embedded mode without TAOBAO_TOP_URL: every call succeeds and is logged, so the
 * gate flows run end to end on a fresh machine. Never used when a real TOP router is configured.
 */
import type { ConsumeResponse, ReverseResponse, TopOutcome } from '../taobao/top-client';
import type { TopWriteOffClient } from './write-off-work';

export class WriteOffTopSandbox implements TopWriteOffClient {
  readonly calls: Array<{ api: 'consume' | 'reverse'; orderId: string; serial: string; count: number }> = [];

  constructor(private readonly log?: { info(obj: object, msg?: string): void }) {}

  async consume(req: { orderId: string; verifyCode: string; consumeNum: number; posid: string; serialNum: string }): Promise<TopOutcome<ConsumeResponse>> {
    this.record('consume', req.orderId, req.serialNum, req.consumeNum);
    return { kind: 'ok', body: { raw: {}, retCode: 1, consumeSerialNum: req.serialNum } as unknown as ConsumeResponse };
  }

  async reverse(req: { orderId: string; reverseNum: number; consumeSerialNum: string }): Promise<TopOutcome<ReverseResponse>> {
    this.record('reverse', req.orderId, req.consumeSerialNum, req.reverseNum);
    return { kind: 'ok', body: { raw: {}, retCode: 1 } as unknown as ReverseResponse };
  }

  private record(api: 'consume' | 'reverse', orderId: string, serial: string, count: number): void {
    if (this.calls.length >= 1000) this.calls.shift();
    this.calls.push({ api, orderId, serial, count });
    this.log?.info({ api, orderId, serial, count }, 'TOP sandbox: write-off call answered ok (no TAOBAO_TOP_URL)');
  }
}
