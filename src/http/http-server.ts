/**
 * The HTTP edge: Taobao notices, supplier callbacks, /metrics, /healthz, /readyz. A deliberately small router on
 * node:http — the routes are few and fixed, and the notice ack path must stay lean.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger';
import type { GatewayMetrics } from '../observability/metrics';

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  readonly rawBody: Buffer;
  readonly requestId: string;
  readonly log: Logger;
}

export interface HttpResponse {
  status: number;
  body: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export type HttpHandler = (req: HttpRequest) => Promise<HttpResponse> | HttpResponse;

/** Bodies larger than this are refused with 413 before they are buffered: no notice or callback is this big. */
export const MAX_BODY_BYTES = 1024 * 1024;

class BodyTooLargeError extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class HttpServer {
  private readonly routes = new Map<string, HttpHandler>();
  private readonly server: Server;
  private inFlight = 0;

  /** Requests being handled now (the work runner yields to them). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  constructor(private readonly log: Logger, private readonly metrics: GatewayMetrics) {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
  }

  /** Registers a handler for an exact method + path. */
  route(method: string, path: string, handler: HttpHandler): this {
    this.routes.set(`${method.toUpperCase()} ${path}`, handler);
    return this;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      // Node's parser takes targets such as `http://[` that the URL parser refuses; a throw here would be an
      // unhandled rejection, which ends the process.
      this.metrics.httpRequests.inc({ route: 'unmatched', code: '400' });
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
      res.end(JSON.stringify({ error: 'malformed request target' }));
      return;
    }
    this.inFlight++;
    const method = (req.method ?? 'GET').toUpperCase();
    const headerId = req.headers['x-request-id'];
    const requestId = typeof headerId === 'string' && /^[\w.:-]{1,64}$/.test(headerId) ? headerId : randomUUID();
    const log = this.log.child({ requestId, route: url.pathname });
    const key = `${method} ${url.pathname}`;
    const handler = this.routes.get(key);
    let response: HttpResponse;
    try {
      if (!handler) {
        const pathKnown = [...this.routes.keys()].some((k) => k.endsWith(` ${url.pathname}`));
        response = pathKnown
          ? { status: 405, body: JSON.stringify({ error: `method ${method} not allowed on ${url.pathname}` }) }
          : { status: 404, body: JSON.stringify({ error: `no route ${url.pathname}` }) };
      } else {
        const rawBody = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : await readBody(req, MAX_BODY_BYTES);
        response = await handler({ method, path: url.pathname, query: url.searchParams, headers: req.headers, rawBody, requestId, log });
      }
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        response = { status: 413, body: JSON.stringify({ error: `body larger than ${MAX_BODY_BYTES} bytes` }) };
      } else {
        log.error({ err }, 'http handler failed');
        response = { status: 500, body: JSON.stringify({ error: 'internal error' }) };
      }
    } finally {
      this.inFlight--;
    }
    this.metrics.httpRequests.inc({ route: handler ? url.pathname : 'unmatched', code: String(response.status) });
    res.writeHead(response.status, {
      'content-type': response.contentType ?? 'application/json; charset=utf-8',
      'x-request-id': requestId,
      ...response.headers,
    });
    res.end(response.body);
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops accepting, lets in-flight requests finish (bounded by the caller's grace period), then closes. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.server.closeAllConnections();
    await closed;
  }
}
