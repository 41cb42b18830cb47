/**
 * The shipped Grafana dashboard and Prometheus alert rules use only metrics the running gateway exports: every
 * metric name in their PromQL is looked up in a real /metrics scrape of a Gateway started on SQLite, 127.0.0.1:0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../src/config';
import { Gateway } from '../../src/app';
import { createLogger } from '../../src/observability/logger';
import { alertRules, baseMetricName, dashboardQueries, metricNamesIn } from './promql';

const DEPLOY = resolve(__dirname, '../../deploy');
const DASHBOARD = join(DEPLOY, 'grafana/ticket-gateway-dashboard.json');
const ALERTS = join(DEPLOY, 'prometheus/alerts.yml');
/** Series Prometheus itself makes about every target; no exporter has them. */
const PROMETHEUS_OWN = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

test('the PromQL reader finds metric names and nothing else', () => {
  assert.deepEqual(
    [...metricNamesIn('histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{job=~"$job", x="a{b}"}[$__rate_interval])))')],
    ['grpc_server_handling_seconds_bucket'],
  );
  assert.deepEqual(
    [...metricNamesIn('sum(rate(a_total{r="error"}[5m])) / sum(rate(a_total[5m])) > 0.05 and on (job) b_seconds offset 5m unless c')].sort(),
    ['a_total', 'b_seconds', 'c'],
  );
  assert.deepEqual([...metricNamesIn('max(x{j="k"}) > 12 * 3600 or vector(1e-9)')], ['x']);
  assert.deepEqual([...metricNamesIn('label_values(up, job)')], ['up']);
  assert.deepEqual([...metricNamesIn('label_values(job)')], []);
  assert.equal(baseMetricName('foo_seconds_bucket'), 'foo_seconds');
  assert.equal(baseMetricName('foo_total'), 'foo_total');
});

test('every metric the dashboard and the alert rules use is exported by the running gateway', { timeout: 60_000 }, async () => {
  const queries = [
    ...dashboardQueries(DASHBOARD),
    ...alertRules(ALERTS).map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr })),
  ];
  const used = new Map<string, string>(); // metric -> first place using it
  for (const q of queries) for (const name of metricNamesIn(q.expr)) if (!used.has(name)) used.set(name, q.where);
  // The reader must really have read them: these are on the dashboard and in the alerts by design.
  for (const name of ['grpc_server_handled_total', 'outbox_oldest_pending_age_seconds', 'circuit_breaker_state', 'work_items', 'up']) {
    assert.ok(used.has(name), `${name} found in the dashboard/alerts`);
  }

  const dataDir = mkdtempSync(join(tmpdir(), 'tg-dashboard-'));
  const gateway = await Gateway.start({
    config: loadConfig({ DATA_DIR: dataDir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0' }),
    logger: createLogger('silent'),
    defaultMetrics: true,
  });
  try {
    const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const types = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
    const samples = new Set([...text.matchAll(/^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/gm)].map((m) => m[1]!));
    assert.ok(types.size > 20, 'the scrape lists the gateway metrics');

    const exported = (name: string): boolean => {
      if (PROMETHEUS_OWN.has(name) || types.has(name) || samples.has(name)) return true;
      const base = baseMetricName(name);
      return base !== name && (types.get(base) === 'histogram' || types.get(base) === 'summary');
    };
    const missing = [...used].filter(([name]) => !exported(name)).map(([name, where]) => `${name} (${where})`);
    assert.deepEqual(missing, [], `the dashboard/alerts use metrics the gateway does not export: ${missing.join(', ')}`);
  } finally {
    await gateway.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('dashboard and alert rules are well-formed', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    title: string;
    panels: Array<{ id: number; type: string; title: string; gridPos: { x: number; w: number; h: number; y: number }; targets?: Array<{ expr: string; refId: string }> }>;
  };
  assert.equal(dash.uid, 'ticket-gateway');
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
  for (const p of dash.panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has a query`);
    const refs = p.targets!.map((t) => t.refId);
    assert.equal(new Set(refs).size, refs.length, `panel "${p.title}" refIds unique`);
  }
  const titles = dash.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const topic of ['grpc calls', 'errors', 'latency', 'circuit breaker', 'outbox', 'parked', 'refunds pending', 'notice error']) {
    assert.ok(titles.includes(topic), `the dashboard shows ${topic}`);
  }

  const rules = alertRules(ALERTS);
  const names = rules.map((r) => r.alert);
  assert.equal(new Set(names).size, names.length, 'alert names unique');
  for (const r of rules) {
    assert.ok(r.alert && /^[A-Z][A-Za-z0-9]+$/.test(r.alert), `alert name ${r.alert}`);
    assert.ok(r.for === undefined || /^\d+[smh]$/.test(r.for), `${r.alert}: for ${r.for}`);
    assert.ok(['critical', 'warning'].includes(r.labels?.severity ?? ''), `${r.alert}: severity label`);
    assert.ok(r.annotations?.summary, `${r.alert}: summary`);
    assert.ok(metricNamesIn(r.expr).size > 0, `${r.alert}: uses a metric`);
    // Balanced brackets: a cheap guard against a typo Prometheus would refuse at load.
    for (const [open, close] of ['()', '{}', '[]']) {
      assert.equal(r.expr.split(open!).length, r.expr.split(close!).length, `${r.alert}: balanced ${open}${close}`);
    }
  }
  const uses = (alertMetric: string) => rules.some((r) => metricNamesIn(r.expr).has(alertMetric));
  for (const m of ['circuit_breaker_state', 'outbox_oldest_pending_age_seconds', 'work_items', 'refunds_pending_audit_oldest_age_seconds', 'taobao_notices_total', 'up']) {
    assert.ok(uses(m), `an alert watches ${m}`);
  }
});
