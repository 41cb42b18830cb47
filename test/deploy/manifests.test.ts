/**
 * Structural checks of what deploy/ ships (Docker cannot run here, and no cluster either): every YAML document
 * parses; Kubernetes kinds/apiVersions are the current ones; ports, probes, env and secrets agree with the code
 * (the config schema, the health routes of a real gateway, the supplier directory loader); the compose stack and
 * the Dockerfile hang together.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { configSchema, loadConfig } from '../../src/config';
import { Gateway } from '../../src/app';
import { createLogger } from '../../src/observability/logger';
import { loadSupplierDirectory } from '../../src/suppliers/supplier-directory';

const ROOT = resolve(__dirname, '../..');
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const SCHEMA_KEYS = new Set(Object.keys(configSchema.shape));
const DEFAULTS = configSchema.parse({});
/** Keys that must never sit in a ConfigMap or a compose file in the clear in production. */
const SECRET_KEYS = ['DATABASE_URL', 'PERSONAL_DATA_KEY', 'TAOBAO_APP_SECRET', 'TAOBAO_SESSION', 'TAOBAO_NOTICE_KEY'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

function yamlDocs(path: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((d, i) => {
    assert.deepEqual(d.errors.map(String), [], `${path} document ${i + 1} parses`);
    assert.deepEqual(d.warnings.map(String), [], `${path} document ${i + 1} has no warnings`);
    return d.toJS();
  });
}

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

const API_VERSION: Record<string, string> = {
  Deployment: 'apps/v1',
  Service: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  PodDisruptionBudget: 'policy/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
};

function k8sObjects(): Array<Doc & { file: string }> {
  const out: Array<Doc & { file: string }> = [];
  for (const f of readdirSync(K8S).filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml')) {
    for (const d of yamlDocs(join(K8S, f))) out.push({ ...d, file: f });
  }
  return out;
}

function one(objs: Doc[], kind: string, name?: string): Doc {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''}`);
  return found[0];
}

test('every YAML file in deploy/ parses cleanly', () => {
  const files = yamlFilesUnder(DEPLOY);
  assert.ok(files.length >= 10, `found ${files.length} YAML files`);
  for (const f of files) assert.ok(yamlDocs(f).length > 0, `${f} has a document`);
});

test('Kubernetes manifests: kinds, apiVersions, selectors, kustomization', () => {
  const objs = k8sObjects();
  for (const o of objs) {
    assert.ok(API_VERSION[o.kind], `${o.file}: known kind ${o.kind}`);
    assert.equal(o.apiVersion, API_VERSION[o.kind], `${o.file}: ${o.kind} apiVersion`);
    assert.ok(o.metadata?.name, `${o.file}: ${o.kind} has a name`);
  }
  for (const kind of Object.keys(API_VERSION)) assert.ok(objs.some((o) => o.kind === kind), `a ${kind} is shipped`);

  const deployment = one(objs, 'Deployment');
  const podLabels = deployment.spec.template.metadata.labels;
  const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  assert.ok(matches(deployment.spec.selector.matchLabels), 'Deployment selector matches its pods');
  assert.ok(matches(one(objs, 'Service').spec.selector), 'Service selects the pods');
  assert.ok(matches(one(objs, 'PodDisruptionBudget').spec.selector.matchLabels), 'PDB selects the pods');

  const hpa = one(objs, 'HorizontalPodAutoscaler');
  assert.deepEqual(
    { kind: hpa.spec.scaleTargetRef.kind, name: hpa.spec.scaleTargetRef.name, apiVersion: hpa.spec.scaleTargetRef.apiVersion },
    { kind: 'Deployment', name: deployment.metadata.name, apiVersion: 'apps/v1' },
  );
  const pdb = one(objs, 'PodDisruptionBudget');
  // With exactly minAvailable replicas a node drain could never evict anything.
  assert.ok(hpa.spec.minReplicas > pdb.spec.minAvailable, 'HPA floor leaves room for the PDB');
  assert.ok(deployment.spec.replicas > pdb.spec.minAvailable, 'replicas leave room for the PDB');
  assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas);

  const kustomization = yamlDocs(join(K8S, 'kustomization.yaml'))[0];
  const manifestFiles = readdirSync(K8S).filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml').sort();
  assert.deepEqual([...kustomization.resources].sort(), manifestFiles, 'kustomization lists every manifest');
});

test('Deployment: ports match the config defaults, probes, shutdown grace, non-root, read-only root with a writable DATA_DIR', () => {
  const objs = k8sObjects();
  const deployment = one(objs, 'Deployment');
  const pod = deployment.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  const configMap = one(objs, 'ConfigMap', 'ticket-gateway-config');
  const effective = loadConfig({ ...configMap.data, ...one(objs, 'Secret').stringData });

  const port = (name: string) => c.ports.find((p: Doc) => p.name === name)?.containerPort;
  assert.equal(port('grpc'), DEFAULTS.GRPC_PORT);
  assert.equal(port('http'), DEFAULTS.HTTP_PORT);
  assert.equal(port('grpc'), effective.GRPC_PORT, 'the ConfigMap does not move the gRPC port away from the container port');
  assert.equal(port('http'), effective.HTTP_PORT);
  assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/port'], String(effective.HTTP_PORT));

  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.equal(port(probe.httpGet.port), effective.HTTP_PORT, 'probes hit the HTTP port');

  const preStopSeconds = Number(c.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  assert.ok(
    pod.terminationGracePeriodSeconds * 1000 > effective.SHUTDOWN_GRACE_MS + preStopSeconds * 1000 + 5_000,
    `terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) leaves SHUTDOWN_GRACE_MS (${effective.SHUTDOWN_GRACE_MS}) + preStop ${preStopSeconds}s + a margin`,
  );

  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'resources set');
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0, 'a non-root uid');
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);

  const volumes = new Map<string, Doc>(pod.volumes.map((v: Doc) => [v.name, v]));
  const mountAt = (path: string) => c.volumeMounts.find((m: Doc) => m.mountPath === path);
  for (const path of [effective.DATA_DIR, '/tmp']) {
    const m = mountAt(path);
    assert.ok(m, `a volume is mounted at ${path}`);
    assert.notEqual(m.readOnly, true, `${path} is writable`);
    const v = volumes.get(m.name);
    assert.ok(v?.emptyDir || v?.persistentVolumeClaim, `${path} is backed by a writable volume`);
  }
  for (const m of c.volumeMounts) assert.ok(volumes.has(m.name), `mount ${m.name} has a volume`);
});

test('env and ConfigMap keys exist in the config schema; secrets come from the Secret; the whole set validates', () => {
  const objs = k8sObjects();
  const deployment = one(objs, 'Deployment');
  const c = deployment.spec.template.spec.containers[0];
  const configMap = one(objs, 'ConfigMap', 'ticket-gateway-config');
  const secret = one(objs, 'Secret');
  const secretKeys = new Set(Object.keys({ ...secret.data, ...secret.stringData }));

  for (const key of Object.keys(configMap.data)) assert.ok(SCHEMA_KEYS.has(key), `ConfigMap key ${key} is a config key`);
  for (const key of SECRET_KEYS) assert.ok(!(key in configMap.data), `${key} is not in the ConfigMap`);
  assert.deepEqual(
    c.envFrom.map((e: Doc) => e.configMapRef?.name),
    [configMap.metadata.name],
    'envFrom takes the ConfigMap',
  );

  // Env names outside the schema are allowed only when the suppliers file reads them (env:NAME).
  const suppliers = one(objs, 'ConfigMap', 'ticket-gateway-suppliers');
  const suppliersJson: string = suppliers.data['suppliers.json'];
  const supplierEnvRefs = new Set([...suppliersJson.matchAll(/"env:([A-Za-z_][A-Za-z0-9_]*)"/g)].map((m) => m[1]!));
  assert.ok(supplierEnvRefs.size > 0);
  const envNames: string[] = c.env.map((e: Doc) => e.name);
  assert.equal(new Set(envNames).size, envNames.length, 'env names unique');
  for (const e of c.env) {
    assert.ok(SCHEMA_KEYS.has(e.name) || supplierEnvRefs.has(e.name), `env ${e.name} is a config key or a suppliers-file reference`);
    assert.ok(!(e.name in configMap.data), `env ${e.name} is not also in the ConfigMap`);
    const ref = e.valueFrom?.secretKeyRef;
    assert.ok(ref, `env ${e.name} comes from a Secret`);
    assert.equal(ref.name, secret.metadata.name, `env ${e.name} names the shipped Secret`);
    assert.ok(secretKeys.has(ref.key), `Secret has key ${ref.key}`);
  }
  for (const key of SECRET_KEYS) assert.ok(envNames.includes(key), `${key} is passed from the Secret`);
  for (const ref of supplierEnvRefs) assert.ok(envNames.includes(ref), `suppliers file reference ${ref} is in the env`);

  // The gateway's own validation accepts ConfigMap + Secret.
  const env = { ...configMap.data, ...Object.fromEntries(c.env.map((e: Doc) => [e.name, secret.stringData[e.valueFrom.secretKeyRef.key]])) };
  const config = loadConfig(env);
  assert.equal(config.SUPPLIERS_FILE, '/etc/ticket-gateway/suppliers.json');

  // The suppliers file mounted where SUPPLIERS_FILE points, and the supplier loader accepts it.
  const mount = c.volumeMounts.find((m: Doc) => config.SUPPLIERS_FILE!.startsWith(m.mountPath + '/'));
  assert.ok(mount, 'SUPPLIERS_FILE lies in a mounted volume');
  const volume = deployment.spec.template.spec.volumes.find((v: Doc) => v.name === mount.name);
  assert.equal(volume.configMap?.name, suppliers.metadata.name);
  const dir = mkdtempSync(join(tmpdir(), 'tg-suppliers-'));
  try {
    const file = join(dir, 'suppliers.json');
    writeFileSync(file, suppliersJson);
    const directory = loadSupplierDirectory(file, { env });
    assert.deepEqual(directory.instances().sort(), ['lianhe-main', 'zyb-main']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Service exposes gRPC and HTTP on the container ports', () => {
  const objs = k8sObjects();
  const service = one(objs, 'Service');
  const c = one(objs, 'Deployment').spec.template.spec.containers[0];
  const byName = new Map<string, Doc>(service.spec.ports.map((p: Doc) => [p.name, p]));
  assert.deepEqual([...byName.keys()].sort(), ['grpc', 'http']);
  for (const [name, def] of [['grpc', DEFAULTS.GRPC_PORT], ['http', DEFAULTS.HTTP_PORT]] as const) {
    const p = byName.get(name)!;
    assert.equal(p.port, def);
    assert.ok(c.ports.some((cp: Doc) => cp.name === p.targetPort || cp.containerPort === p.targetPort), `${name} targets a container port`);
  }
});

test('the probe paths are real: a started gateway answers them', { timeout: 60_000 }, async () => {
  const c = one(k8sObjects(), 'Deployment').spec.template.spec.containers[0];
  const dataDir = mkdtempSync(join(tmpdir(), 'tg-probes-'));
  const gateway = await Gateway.start({
    config: loadConfig({ DATA_DIR: dataDir, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0' }),
    logger: createLogger('silent'),
    defaultMetrics: false,
  });
  try {
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      const res = await fetch(`http://127.0.0.1:${gateway.httpPort}${probe.httpGet.path}`);
      assert.equal(res.status, 200, `${probe.httpGet.path} answers 200`);
    }
    const prometheus = yamlDocs(join(DEPLOY, 'prometheus/prometheus.yml'))[0];
    const metricsPath = prometheus.scrape_configs[0].metrics_path;
    assert.equal((await fetch(`http://127.0.0.1:${gateway.httpPort}${metricsPath}`)).status, 200, 'Prometheus scrapes a real path');
    const none = await fetch(`http://127.0.0.1:${gateway.httpPort}/no-such-probe`);
    assert.notEqual(none.status, 200, 'a wrong path would be caught');
  } finally {
    await gateway.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('compose stack: services, gateway env valid, Prometheus loads the alert rules, Grafana gets the dashboard', () => {
  const compose = yamlDocs(join(DEPLOY, 'compose.yaml'))[0];
  assert.deepEqual(Object.keys(compose.services).sort(), ['gateway', 'grafana', 'kafka', 'mysql', 'prometheus']);
  const gw = compose.services.gateway;
  for (const key of Object.keys(gw.environment)) assert.ok(SCHEMA_KEYS.has(key), `gateway env ${key} is a config key`);
  const config = loadConfig(Object.fromEntries(Object.entries(gw.environment).map(([k, v]) => [k, String(v)])));
  assert.deepEqual(gw.ports, [`${config.GRPC_PORT}:${config.GRPC_PORT}`, `${config.HTTP_PORT}:${config.HTTP_PORT}`]);
  assert.equal(gw.read_only, true);
  assert.ok(gw.volumes.some((v: string) => v.endsWith(`:${config.DATA_DIR}`)), 'DATA_DIR is a volume');
  assert.ok(Number.parseInt(gw.stop_grace_period, 10) * 1000 > config.SHUTDOWN_GRACE_MS, 'stop_grace_period > SHUTDOWN_GRACE_MS');
  assert.ok(existsSync(join(DEPLOY, gw.build.context, gw.build.dockerfile)), 'the gateway builds from the shipped Dockerfile');
  const dbUrl = new URL(config.DATABASE_URL!);
  assert.equal(dbUrl.hostname, 'mysql');
  assert.equal(decodeURIComponent(dbUrl.password), compose.services.mysql.environment.MYSQL_PASSWORD);
  assert.equal(dbUrl.pathname, `/${compose.services.mysql.environment.MYSQL_DATABASE}`);
  assert.deepEqual(config.KAFKA_BROKERS, ['kafka:9092']);

  // Every bind mount's source exists.
  for (const [name, svc] of Object.entries<Doc>(compose.services)) {
    for (const v of (svc.volumes ?? []) as string[]) {
      const source = v.split(':')[0]!;
      if (source.startsWith('.')) assert.ok(existsSync(join(DEPLOY, source)), `${name}: mount source ${source} exists`);
    }
  }
  const target = (svc: Doc, file: string) => (svc.volumes as string[]).find((v) => v.startsWith(`./${file}:`))?.split(':')[1];

  const prom = compose.services.prometheus;
  const promConfig = yamlDocs(join(DEPLOY, 'prometheus/prometheus.yml'))[0];
  assert.ok(prom.command.includes(`--config.file=${target(prom, 'prometheus/prometheus.yml')}`));
  assert.deepEqual(promConfig.rule_files, [target(prom, 'prometheus/alerts.yml')], 'the alert rules file is loaded where it is mounted');
  const scrape = promConfig.scrape_configs.find((s: Doc) => s.job_name === 'ticket-gateway');
  assert.deepEqual(scrape.static_configs[0].targets, [`gateway:${config.HTTP_PORT}`]);
  // The alerts select job="ticket-gateway": the scrape job must carry that name.
  assert.match(readFileSync(join(DEPLOY, 'prometheus/alerts.yml'), 'utf8'), /job="ticket-gateway"/);

  const grafana = compose.services.grafana;
  const dashTarget = target(grafana, 'grafana/ticket-gateway-dashboard.json')!;
  const provider = yamlDocs(join(DEPLOY, 'grafana/provisioning/dashboards/ticket-gateway.yaml'))[0];
  assert.ok(dashTarget.startsWith(provider.providers[0].options.path + '/'), 'the dashboard is mounted where the provider looks');
  const datasource = yamlDocs(join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yaml'))[0];
  assert.equal(datasource.datasources[0].url, 'http://prometheus:9090');
});

interface Instruction {
  readonly op: string;
  readonly args: string;
}

function dockerfile(path: string): Instruction[][] {
  const lines = readFileSync(path, 'utf8')
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Instruction[][] = [];
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const ins = { op: op!.toUpperCase(), args: rest.join(' ') };
    if (ins.op === 'FROM') stages.push([]);
    assert.ok(stages.length > 0, `${line}: instruction before FROM`);
    stages[stages.length - 1]!.push(ins);
  }
  return stages;
}

test('Dockerfile (structure only; Docker cannot run here): multi-stage, npm ci + build, node:20-slim non-root runtime', () => {
  const stages = dockerfile(join(DEPLOY, 'Dockerfile'));
  assert.ok(stages.length >= 2, 'multi-stage');
  const from = (s: Instruction[]) => s[0]!.args;
  const runtime = stages[stages.length - 1]!;
  assert.match(from(runtime), /^node:20-slim\b/);
  const build = stages.find((s) => / AS build$/i.test(from(s)));
  assert.ok(build, 'a build stage');
  const runs = build.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.ok(runs.some((r) => /\bnpm ci\b/.test(r)), 'npm ci');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.ok(runs.some((r) => /\bnpm run build\b/.test(r)) && pkg.scripts.build, 'npm run build (a real script)');

  // Every file copied from the build context exists in the repository.
  for (const ins of build.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
    const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`);
  }
  assert.ok(runtime.some((i) => i.op === 'COPY' && /--from=build .*\/app\/dist/.test(i.args)), 'runtime takes the compiled output');
  assert.ok(runtime.some((i) => i.op === 'COPY' && /--from=build .*\/app\/proto/.test(i.args)), 'runtime has proto/ (reflection reads it)');

  const user = runtime.filter((i) => i.op === 'USER').map((i) => i.args).at(-1);
  assert.ok(user && !/^(root|0)(:|$)/.test(user), `runtime runs as a non-root user (${user})`);
  const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number));
  assert.deepEqual(exposed.sort(), [DEFAULTS.GRPC_PORT, DEFAULTS.HTTP_PORT].sort());
  const cmd = JSON.parse(runtime.find((i) => i.op === 'CMD')!.args) as string[];
  const entry = pkg.scripts['start:compiled']!.split(/\s+/).at(-1)!;
  assert.equal(cmd.at(-1), entry, 'runs the same entry as npm run start:compiled');
  const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  const dataDir = /DATA_DIR=(\S+)/.exec(env)?.[1];
  assert.ok(dataDir && runtime.some((i) => i.op === 'RUN' && i.args.includes(`chown node:node ${dataDir}`)), 'DATA_DIR is writable by the runtime user');
});
