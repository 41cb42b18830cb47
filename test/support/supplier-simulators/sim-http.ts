/**
 * Shared plumbing of the supplier simulators: a real HTTP server on 127.0.0.1:0 with fault switches,
 * and a callback receiver that hands inbound requests to an adapter's parseCallback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CallbackParseResult, InboundCallbackRequest, SupplierAdapter } from '../../../src/suppliers/supplier-adapter';

/** Fault switches every simulator honours. */
export interface SimulatorSwitches {
  /** Delay every reply by this many ms (the client should abort first). */
  slowMs: number;
  /** Answer every request with HTTP 503. */
  serverError: boolean;
  /** Answer with a truncated, unparsable body (HTTP 200). */
  malformed: boolean;
  /** How refund audits end: approve, reject, or stay pending. */
  audit: 'approve' | 'reject' | 'pending';
  /** Audit queries answered "pending" before the decision. */
  auditPendingQueries: number;
  /** How many times each callback is delivered (suppliers repeat until `success`). */
  callbackCopies: number;
}

export const DEFAULT_SWITCHES: SimulatorSwitches = {
  slowMs: 0,
  serverError: false,
  malformed: false,
  audit: 'approve',
  auditPendingQueries: 0,
  callbackCopies: 1,
};

export interface SimRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export interface SimReply {
  readonly status: number;
  readonly contentType: string;
  /** Text, or bytes (an image). */
  readonly body: string | Buffer;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

/** Starts a server that applies the fault switches, then the handler. */
export async function startSimServer(
  switches: () => SimulatorSwitches,
  handle: (req: SimRequest) => SimReply,
  malformedBody: string,
): Promise<RunningServer> {
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    readBody(req)
      .then((body) => {
        const s = switches();
        const reply = (): SimReply => {
          if (s.serverError) return { status: 503, contentType: 'text/plain', body: 'Service Unavailable' };
          if (s.malformed) return { status: 200, contentType: 'text/plain; charset=utf-8', body: malformedBody };
          return handle({ method: req.method ?? 'GET', url: new URL(req.url ?? '/', 'http://127.0.0.1'), headers: req.headers, body });
        };
        if (s.slowMs > 0) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            send(res, reply());
          }, s.slowMs);
          timers.add(timer);
          // A client that gave up closes the socket: stop waiting for it.
          res.on('close', () => {
            clearTimeout(timer);
            timers.delete(timer);
          });
        } else {
          send(res, reply());
        }
      })
      .catch(() => send(res, { status: 400, contentType: 'text/plain', body: 'bad request' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, reply: SimReply): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(reply.status, { 'content-type': reply.contentType });
  res.end(reply.body);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** What a supplier got back when it delivered a callback. */
export interface CallbackDelivery {
  readonly status: number;
  readonly body: string;
}

/** Delivers one HTTP request `copies` times, as suppliers repeat notices; returns every reply. */
export async function deliver(
  url: string,
  init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
  copies: number,
): Promise<CallbackDelivery[]> {
  const out: CallbackDelivery[] = [];
  for (let i = 0; i < Math.max(1, copies); i++) {
    const res = await fetch(url, { method: init.method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(5_000) });
    out.push({ status: res.status, body: await res.text() });
  }
  return out;
}

/** Our side of a callback: a real HTTP endpoint that feeds requests to an adapter's parseCallback. */
export interface CallbackReceiver extends RunningServer {
  readonly results: CallbackParseResult[];
  /** Number of distinct accepted notices, by dedup key (what the caller would act on). */
  acceptedKeys(): Set<string>;
}

export async function startCallbackReceiver(adapter: SupplierAdapter, path = '/callbacks/supplier'): Promise<CallbackReceiver> {
  const results: CallbackParseResult[] = [];
  const server = createServer((req, res) => {
    readBody(req)
      .then((rawBody) => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const inbound: InboundCallbackRequest = {
          method: req.method ?? 'GET',
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: req.headers,
          rawBody,
        };
        const result = adapter.parseCallback(inbound);
        results.push(result);
        res.writeHead(result.reply.status, { 'content-type': result.reply.contentType });
        res.end(result.reply.body);
      })
      .catch(() => {
        res.writeHead(400);
        res.end('failure');
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    results,
    acceptedKeys: () => new Set(results.flatMap((r) => (r.ok ? [r.callback.dedupKey] : []))),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
