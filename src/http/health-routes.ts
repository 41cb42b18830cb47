/**
 * Liveness, readiness and the Prometheus scrape endpoint. Liveness only says the process answers; readiness also
 * needs the database, so a replica that lost its database stops receiving traffic but is not restarted for it.
 */
import type { GatewayMetrics } from '../observability/metrics';
import type { HttpServer } from './http-server';

export function healthRoutes(http: HttpServer, deps: { metrics: GatewayMetrics; isReady: () => Promise<boolean> }): void {
  http.route('GET', '/healthz', () => ({ status: 200, body: JSON.stringify({ status: 'ok' }) }));
  http.route('GET', '/readyz', async () => {
    const ready = await deps.isReady().catch(() => false);
    return { status: ready ? 200 : 503, body: JSON.stringify({ status: ready ? 'ready' : 'not ready' }) };
  });
  http.route('GET', '/metrics', async () => ({
    status: 200,
    body: await deps.metrics.registry.metrics(),
    contentType: deps.metrics.registry.contentType,
  }));
}
