/** A plain TCP forwarder on 127.0.0.1: makes an address reachable (or not) at a moment the test chooses. */
import { connect, createServer, type Socket } from 'node:net';

export interface Forwarder {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on `port` (0 = any free port) and pipes every connection to `target` (`host:port`). */
export async function startForwarder(port: number, target: string): Promise<Forwarder> {
  const cut = target.lastIndexOf(':');
  const host = target.slice(0, cut);
  const targetPort = Number(target.slice(cut + 1));
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host, port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => (client.destroy(), upstream.destroy()));
      socket.on('close', () => (sockets.delete(socket), client.destroy(), upstream.destroy()));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
