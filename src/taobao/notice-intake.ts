/**
 * Taobao notices in: verify, deduplicate, apply, and only then acknowledge (durable ack).
 *
 * One transaction per notice: the `inbound_messages` row (source 'taobao', the parser's dedup key), the domain
 * change, its outbox events and work items, and the answer we give, stored in that row. A repeat of the notice finds
 * the row and gets the stored answer, with no second effect. If the commit fails we answer 500 and Taobao retries.
 * Refused notices (bad sign, invalid fields) record nothing.
 */
import type { EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import { refundableNow } from '../domain/order';
import type { GatewayMetrics } from '../observability/metrics';
import { acceptSendNotice, acceptSendNoticeStatements } from '../orders/order-issuing';
import { supplierUpstream, type FlowLog, type ProductResolver, type RefundIntake } from '../orders/order-ports';
import { acceptResendNotice, raiseUnknownOrder } from '../orders/order-resend';
import { loadOrderForUpdate } from '../orders/order-store';
import type { Database } from '../persistence/database';
import { InboundMessageEntity } from '../persistence/entities/inbound-message.entity';
import { OrderEntity } from '../persistence/entities/order.entity';
import { isUniqueViolation } from '../persistence/errors';
import { insertStatement } from '../persistence/statement-batch';
import type { OrderRepository } from '../persistence/order-repository';
import type { PersonalDataProtector } from '../security/personal-data-protector';
import { NOTICE_ACK, NOTICE_METHODS, dedupKey, parseNoticeBody, validateNotice, type TaobaoNotice } from './notice-parser';

export const TAOBAO_SOURCE = 'taobao';

export type NoticeResult = 'ok' | 'duplicate' | 'bad_sign' | 'invalid' | 'error';

export interface NoticeAnswer {
  readonly status: number;
  readonly body: string;
  readonly result: NoticeResult;
}

export interface NoticeIntakeDeps {
  readonly db: Database;
  readonly orders: OrderRepository;
  readonly protector: PersonalDataProtector;
  readonly refunds: RefundIntake;
  /** Optional: names the place-order breaker after the product's supplier at intake. */
  readonly products?: ProductResolver;
  /** Several while rotating keys. */
  readonly noticeKey: string | readonly string[];
  readonly maxAgeMs?: number;
  readonly clock: Clock;
  readonly log: FlowLog;
  readonly metrics?: GatewayMetrics;
}

const SERVER_ERROR_BODY = '{"code":500}';

/** A valid notice we still cannot take (e.g. a quantity the domain refuses): rolls the transaction back. */
class NoticeRefused extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class NoticeIntake {
  constructor(private readonly deps: NoticeIntakeDeps) {}

  async receive(raw: Buffer, contentType: string | undefined): Promise<NoticeAnswer> {
    const started = process.hrtime.bigint();
    const answer = await this.handle(raw, contentType);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.deps.metrics?.taobaoNotices.inc({ method: answer.method, result: answer.result });
    this.deps.metrics?.taobaoNoticeAckSeconds.observe({ method: answer.method, result: answer.result }, seconds);
    return { status: answer.status, body: answer.body, result: answer.result };
  }

  private async handle(raw: Buffer, contentType: string | undefined): Promise<NoticeAnswer & { method: string }> {
    const { log, clock } = this.deps;
    const parsed = parseNoticeBody(raw, contentType);
    if (!parsed.ok) {
      log.warn({ reason: parsed.reason, detail: parsed.message }, 'taobao notice refused: malformed body');
      return { status: parsed.httpStatus, body: parsed.body, result: 'invalid', method: 'unknown' };
    }
    const method = methodLabel(parsed.params['method']);
    const validated = validateNotice(parsed.params, { noticeKey: this.deps.noticeKey, now: clock.now(), maxAgeMs: this.deps.maxAgeMs });
    if (!validated.ok) {
      const result = validated.reason === 'BAD_SIGN' ? 'bad_sign' : 'invalid';
      log.warn({ method, reason: validated.reason, detail: validated.message }, 'taobao notice refused');
      return { status: validated.httpStatus, body: validated.body, result, method };
    }
    const notice = validated.notice;
    const key = dedupKey(notice, parsed.params);
    const upstream = notice.method === 'send' ? await this.placeUpstream(notice.outerIid, notice.subOuterIid) : undefined;

    try {
      let body: string;
      try {
        body = await this.commit(notice, key, upstream, true);
      } catch (err) {
        // A batched send failed on a unique index: a repeat of this notice (answered below), or a Taobao order we
        // already hold under another notice, which the step-by-step path recognises.
        if (notice.method !== 'send' || !isUniqueViolation(err) || (await this.storedAnswer(key))) throw err;
        body = await this.commit(notice, key, upstream, false);
      }
      log.info({ method, taobaoOrderId: notice.orderId, duplicate: false, answer: body }, 'taobao notice acknowledged');
      return { status: 200, body, result: 'ok', method };
    } catch (err) {
      if (err instanceof NoticeRefused) {
        log.warn({ method, taobaoOrderId: notice.orderId, reason: err.reason, detail: err.message }, 'taobao notice refused by the domain');
        return { status: 400, body: JSON.stringify({ code: 400, reason: err.reason, message: err.message }), result: 'invalid', method };
      }
      if (isUniqueViolation(err)) {
        // A repeat: answer what the first one was answered, with no second effect.
        const stored = await this.storedAnswer(key);
        if (stored?.responseBody) {
          log.info({ method, taobaoOrderId: notice.orderId, duplicate: true, answer: stored.responseBody }, 'taobao notice acknowledged');
          return { status: stored.responseStatus ?? 200, body: stored.responseBody, result: 'duplicate', method };
        }
      }
      log.error({ method, taobaoOrderId: notice.orderId, err }, 'taobao notice not committed; answering 500 so Taobao retries');
      return { status: 500, body: SERVER_ERROR_BODY, result: 'error', method };
    }
  }

  /**
   * One transaction: the notice's row, inserted first with the usual answer (its unique index turns a repeat into a
   * duplicate-key failure, and makes a concurrent repeat wait for us, then fail the same way), and the notice's
   * change. `batched`: a send's rows go in one round trip (statement-batch.ts). Returns the answer.
   */
  private async commit(notice: TaobaoNotice, key: string, upstream: string | undefined, batched: boolean): Promise<string> {
    const { clock, log } = this.deps;
    const inbound = { source: TAOBAO_SOURCE, dedupKey: key, method: notice.method, receivedAt: clock.now(), responseStatus: 200, responseBody: NOTICE_ACK.ok };
    if (batched && notice.method === 'send') {
      // A send needs no reads: the whole transaction is one round trip.
      await this.deps.db.atomically((em) => {
        const planned = acceptSendNoticeStatements(em, notice, { orders: this.deps.orders, protector: this.deps.protector, clock, log, placeUpstream: upstream });
        if (planned.kind === 'rejected') throw new NoticeRefused(planned.reason, planned.message);
        return [insertStatement(em, InboundMessageEntity, inbound), ...planned.statements];
      });
      return NOTICE_ACK.ok;
    }
    return this.deps.db.transaction(async (em) => {
      await em.insert(InboundMessageEntity, inbound);
      const answered = await this.apply(em, notice, key, upstream);
      if (answered !== NOTICE_ACK.ok) await em.update(InboundMessageEntity, { source: TAOBAO_SOURCE, dedupKey: key }, { responseBody: answered });
      return answered;
    });
  }

  private storedAnswer(key: string): Promise<InboundMessageEntity | null> {
    return this.deps.db.read((em) => em.findOne(InboundMessageEntity, { where: { source: TAOBAO_SOURCE, dedupKey: key } })).catch(() => null);
  }

  /** The notice's domain change, in the notice's transaction; returns the ack body. */
  private async apply(em: EntityManager, notice: TaobaoNotice, key: string, upstream: string | undefined): Promise<string> {
    const { clock, log } = this.deps;
    switch (notice.method) {
      case 'send': {
        const r = await acceptSendNotice(em, notice, { orders: this.deps.orders, protector: this.deps.protector, clock, log, placeUpstream: upstream });
        if (r.kind === 'rejected') throw new NoticeRefused(r.reason, r.message);
        if (r.kind === 'existing') log.info({ orderId: r.orderId }, 'send notice for an order we already hold; no second order');
        return NOTICE_ACK.ok;
      }
      case 'resend':
      case 'modified': {
        const r = await acceptResendNotice(em, notice, key, { protector: this.deps.protector, clock, log });
        return r.ackCode === 300 ? NOTICE_ACK.resendCodesChanged : NOTICE_ACK.ok;
      }
      case 'cancel': {
        const orderId = await this.orderIdOf(em, notice);
        if (orderId) await this.deps.refunds.handleCancelNotice(em, { orderId, units: notice.cancelNum, origin: 'taobao_cancel' }, { clock, log });
        return NOTICE_ACK.ok;
      }
      case 'order_modify': {
        const orderId = await this.orderIdOf(em, notice);
        if (!orderId) return NOTICE_ACK.ok;
        if (notice.subMethod === 1) {
          await this.deps.refunds.handleValidityChangeNotice(em, { orderId, validity: notice.validity }, { clock, log });
          return NOTICE_ACK.ok;
        }
        // Rights protection succeeded: whatever is still unused is refunded.
        const { snapshot } = await loadOrderForUpdate(em, orderId);
        const units = refundableNow(snapshot, clock.now()).count;
        if (units === 0) {
          log.info({ orderId }, 'rights protection notice with nothing left to refund');
          return NOTICE_ACK.ok;
        }
        await this.deps.refunds.handleCancelNotice(em, { orderId, units, origin: 'rights_protection' }, { clock, log });
        return NOTICE_ACK.ok;
      }
    }
  }

  /** Our order id; an unknown Taobao order is acknowledged (Taobao would repeat forever) and raised to operators. */
  private async orderIdOf(em: EntityManager, notice: TaobaoNotice): Promise<string | undefined> {
    const row = await em.findOne(OrderEntity, { where: { taobaoOrderId: notice.orderId }, select: { id: true } });
    if (row) return row.id;
    await raiseUnknownOrder(em, notice.method, notice.orderId, this.deps.clock.now());
    this.deps.log.warn({ method: notice.method, taobaoOrderId: notice.orderId }, 'notice for an order we do not hold; acknowledged');
    return undefined;
  }

  /** Breaker name for the placement; a directory failure must not cost the ack. */
  private async placeUpstream(outerIid: string | undefined, subOuterIid: string | undefined): Promise<string> {
    if (!this.deps.products || (!outerIid && !subOuterIid)) return supplierUpstream(undefined);
    try {
      return supplierUpstream((await this.deps.products.resolve(outerIid ?? null, subOuterIid ?? null))?.supplierInstance);
    } catch {
      return supplierUpstream(undefined);
    }
  }
}

function methodLabel(method: string | undefined): string {
  return method !== undefined && (NOTICE_METHODS as readonly string[]).includes(method) ? method : 'unknown';
}
