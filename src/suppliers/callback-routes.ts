/**
 * Supplier callbacks over HTTP: `GET|POST /suppliers/<instance>/callback`, one path per configured instance
 * (Zhiyoubao calls with GET query parameters, Lianhe and the sandbox POST JSON).
 *
 * adapter.parseCallback -> refused (bad sign, malformed): the supplier's failure reply, nothing recorded.
 * Verified -> one transaction: record it in `inbound_messages` (source = instance code, the callback's dedup
 * key) and run the registered sink handler; commit; reply what the supplier expects. A repeat finds its
 * record and gets the stored reply with no second effect. Suppliers repeat until they get `success`, so a
 * fault (or a callback type nobody handles yet) answers a failure and records nothing: the repeat is processed.
 */
import { createHash } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { Clock } from '../domain/model';
import type { HttpRequest, HttpResponse, HttpServer } from '../http/http-server';
import type { Logger } from '../observability/logger';
import type { GatewayMetrics } from '../observability/metrics';
import type { Database } from '../persistence/database';
import { InboundMessageEntity } from '../persistence/entities/inbound-message.entity';
import { isUniqueViolation } from '../persistence/errors';
import type { CallbackReply, InboundCallbackRequest, SupplierAdapter, SupplierCallback } from './supplier-adapter';
import type { SupplierDirectory } from './supplier-directory';

export type AdmissionCallback = Extract<SupplierCallback, { type: 'admission' }>;
export type RefundAuditCallback = Extract<SupplierCallback, { type: 'refund_audit' }>;
export type OrderFinishedCallback = Extract<SupplierCallback, { type: 'order_finished' }>;

/** What a sink handler gets besides the transaction and the callback. */
export interface CallbackSinkDeps {
  /** The supplier instance the callback came to, e.g. 'zyb-huangshan'. */
  readonly instanceCode: string;
  readonly adapter: SupplierAdapter;
  readonly clock: Clock;
  /** When we received the callback (epoch ms). */
  readonly receivedAt: number;
  readonly log: Logger;
}

/**
 * Where verified supplier callbacks go. Each handler runs inside the transaction that records the callback
 * in `inbound_messages`: it must write through `em` only (no outside calls; enqueue work instead), and a
 * throw rolls everything back so the supplier's retry is processed again.
 */
export interface SupplierCallbackSink {
  onAdmission?(em: EntityManager, cb: AdmissionCallback, deps: CallbackSinkDeps): Promise<void>;
  onRefundAudit?(em: EntityManager, cb: RefundAuditCallback, deps: CallbackSinkDeps): Promise<void>;
  onOrderFinished?(em: EntityManager, cb: OrderFinishedCallback, deps: CallbackSinkDeps): Promise<void>;
}

type CallbackType = SupplierCallback['type'];
type Handler = (em: EntityManager, cb: SupplierCallback, deps: CallbackSinkDeps) => Promise<void>;

/**
 * The registration point for the modules that act on callbacks (admissions, refund audits). Each callback type
 * has at most one handler, so a callback cannot take effect twice through two modules.
 */
export class CallbackSinkRegistry {
  private readonly handlers = new Map<CallbackType, Handler>();

  register(sink: SupplierCallbackSink): this {
    const add = (type: CallbackType, fn: Handler | undefined) => {
      if (!fn) return;
      if (this.handlers.has(type)) throw new Error(`a supplier callback sink for '${type}' is already registered`);
      this.handlers.set(type, fn);
    };
    add('admission', sink.onAdmission && ((em, cb, d) => sink.onAdmission!(em, cb as AdmissionCallback, d)));
    add('refund_audit', sink.onRefundAudit && ((em, cb, d) => sink.onRefundAudit!(em, cb as RefundAuditCallback, d)));
    add('order_finished', sink.onOrderFinished && ((em, cb, d) => sink.onOrderFinished!(em, cb as OrderFinishedCallback, d)));
    return this;
  }

  handlerFor(type: CallbackType): Handler | undefined {
    return this.handlers.get(type);
  }
}

export function supplierCallbackPath(instanceCode: string): string {
  return `/suppliers/${instanceCode}/callback`;
}

export interface SupplierCallbackDeps {
  readonly db: Database;
  readonly suppliers: SupplierDirectory;
  readonly sinks: CallbackSinkRegistry;
  readonly clock: Clock;
  readonly metrics: GatewayMetrics;
}

export type CallbackResult = 'accepted' | 'duplicate' | 'rejected' | 'unhandled' | 'error';

/** The longest dedup key `inbound_messages` holds; longer keys are stored as their digest. */
const MAX_DEDUP_KEY = 191;

export function storedDedupKey(key: string): string {
  return key.length <= MAX_DEDUP_KEY ? key : `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

/** Registers GET and POST on every configured instance's callback path; returns the paths. */
export function registerSupplierCallbackRoutes(http: HttpServer, deps: SupplierCallbackDeps): string[] {
  const paths: string[] = [];
  for (const instance of deps.suppliers.instances()) {
    const path = supplierCallbackPath(instance);
    const handler = (req: HttpRequest) => handleSupplierCallback(instance, req, deps);
    http.route('GET', path, handler).route('POST', path, handler);
    paths.push(path);
  }
  return paths;
}

function toHttp(reply: CallbackReply): HttpResponse {
  return { status: reply.status, body: reply.body, contentType: reply.contentType };
}

/** A reply the supplier reads as "not taken, send it again". */
function retryLater(status: number): HttpResponse {
  return { status, body: 'failure', contentType: 'text/plain; charset=utf-8' };
}

export async function handleSupplierCallback(instance: string, req: HttpRequest, deps: SupplierCallbackDeps): Promise<HttpResponse> {
  const adapter = deps.suppliers.get(instance);
  if (!adapter) return { status: 404, body: JSON.stringify({ error: `no supplier instance ${instance}` }) };
  const count = (type: string, result: CallbackResult) => deps.metrics.supplierCallbacks.inc({ supplier: instance, type, result });

  const inbound: InboundCallbackRequest = {
    method: req.method,
    path: req.path,
    query: Object.fromEntries(req.query),
    headers: req.headers,
    rawBody: req.rawBody,
  };
  const parsed = adapter.parseCallback(inbound);
  if (!parsed.ok) {
    count('unknown', 'rejected');
    req.log.warn({ supplier: instance, reason: parsed.reason, detail: parsed.message }, 'supplier callback refused');
    return toHttp(parsed.reply);
  }

  const cb = parsed.callback;
  const handler = deps.sinks.handlerFor(cb.type);
  if (!handler) {
    count(cb.type, 'unhandled');
    req.log.error({ supplier: instance, type: cb.type, dedupKey: cb.dedupKey }, 'no handler for this supplier callback type; not acknowledged');
    return retryLater(503);
  }

  const dedupKey = storedDedupKey(cb.dedupKey);
  const receivedAt = deps.clock.now();
  const sinkDeps: CallbackSinkDeps = { instanceCode: instance, adapter, clock: deps.clock, receivedAt, log: req.log };
  const findStored = (em: EntityManager) => em.findOne(InboundMessageEntity, { where: { source: instance, dedupKey } });
  const replayStored = (stored: InboundMessageEntity): HttpResponse => ({
    status: stored.responseStatus ?? parsed.reply.status,
    body: stored.responseBody ?? parsed.reply.body,
    contentType: parsed.reply.contentType,
  });

  try {
    const stored = await deps.db.transaction(async (em) => {
      const seen = await findStored(em);
      if (seen) return seen;
      await em.insert(InboundMessageEntity, {
        source: instance,
        dedupKey,
        method: cb.type,
        receivedAt,
        responseStatus: parsed.reply.status,
        responseBody: parsed.reply.body,
      });
      await handler(em, cb, sinkDeps);
      return undefined;
    });
    if (stored) {
      count(cb.type, 'duplicate');
      req.log.info({ supplier: instance, type: cb.type, dedupKey: cb.dedupKey }, 'repeated supplier callback; stored reply');
      return replayStored(stored);
    }
    count(cb.type, 'accepted');
    req.log.info({ supplier: instance, type: cb.type, dedupKey: cb.dedupKey }, 'supplier callback accepted');
    return toHttp(parsed.reply);
  } catch (err) {
    if (isUniqueViolation(err)) {
      // The same callback, delivered twice at once, committed first on the other connection.
      const stored = await deps.db.read(findStored);
      if (stored) {
        count(cb.type, 'duplicate');
        return replayStored(stored);
      }
    }
    count(cb.type, 'error');
    req.log.error({ err, supplier: instance, type: cb.type, dedupKey: cb.dedupKey }, 'supplier callback failed; not acknowledged');
    return retryLater(500);
  }
}
