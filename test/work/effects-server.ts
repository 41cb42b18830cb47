/**
 * A real HTTP server on 127.0.0.1 standing in for an outside party that honours idempotency keys: the first
 * request with a key takes effect, repeats are answered with the same result and no new effect. It can be told
 * to fail (HTTP 503), refuse (HTTP 200 with a business error) or hang, and it notices aborted requests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export type UpstreamMode = 'ok' | 'fail' | 'refuse' | 'hang';

export interface EffectsServer {
  readonly url: string;
  mode: UpstreamMode;
  /** Extra latency before answering, ms. */
  delayMs: number;
  /** Every request, in arrival order: key and body. */
  readonly requests: Array<{ key: string; body: Record<string, unknown> }>;
  /** Keys in the order they first took effect. */
  readonly effects: string[];
  /** Requests whose connection closed before we answered. */
  aborted: number;
  /** Per order: requests being processed right now (to catch two calls of one order at once). */
  readonly overlaps: string[];
  close(): Promise<void>;
}

export async function startEffectsServer(): Promise<EffectsServer> {
  const open = new Set<ServerResponse>();
  const busyOrders = new Set<string>();
  const hung = new Set<ServerResponse>();
  const state: EffectsServer = {
    url: '',
    mode: 'ok',
    delayMs: 0,
    requests: [],
    effects: [],
    aborted: 0,
    overlaps: [],
    close: async () => undefined,
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      open.add(res);
      res.on('close', () => {
        open.delete(res);
        hung.delete(res);
        if (!res.writableFinished) state.aborted++;
      });
      const key = String(req.headers['idempotency-key'] ?? '');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        /* keep {} */
      }
      state.requests.push({ key, body });
      const order = typeof body.orderId === 'string' ? body.orderId : '';
      if (order) {
        if (busyOrders.has(order)) state.overlaps.push(order);
        busyOrders.add(order);
      }
      const answer = () => {
        if (order) busyOrders.delete(order);
        if (res.destroyed) return;
        if (state.mode === 'hang') {
          hung.add(res);
          return;
        }
        if (state.mode === 'fail') {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"UNAVAILABLE"}');
          return;
        }
        if (state.mode === 'refuse') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"error":"CODE_ALREADY_USED"}');
          return;
        }
        if (!state.effects.includes(key)) state.effects.push(key);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, key }));
      };
      if (state.delayMs > 0) setTimeout(answer, state.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/effect`,
    close: async () => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
