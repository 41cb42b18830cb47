/**
 * The test command (`npm test [-- paths...]`): provides MariaDB and a Kafka-protocol broker, then runs node's
 * built-in test runner over the test files.
 *
 * - DATABASE_URL / KAFKA_BROKERS, when set, name services the tester provides; otherwise a throwaway MariaDB and
 *   the kcat mock broker are started here and stopped again on every way out (success, failure, SIGINT/SIGTERM).
 * - Test processes see them as TEST_MYSQL_URL and TEST_KAFKA_BROKERS.
 * - Files: every test/**\/*.test.ts, or those under the paths given as arguments. At most two files run at once
 *   (two cores). The TAP reporter is forced so the closing `# tests / # pass / # fail` summary is always printed.
 * - Exits with the runner's exit code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { startKafkaMock, startMariaDb, type KafkaMockService, type MariaDbService } from './support/services';

const ROOT = resolve(__dirname, '..');
const CONCURRENCY = Number(process.env.TEST_CONCURRENCY ?? 2);
/** Whole-run bound, so a hung test cannot hold CI (and the services) forever. */
const RUN_TIMEOUT_MS = Number(process.env.TEST_RUN_TIMEOUT_MS ?? 30 * 60_000);
const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', '.test-services']);

function collectTestFiles(path: string, into: string[]): void {
  const stat = statSync(path);
  if (stat.isFile()) {
    into.push(path);
    return;
  }
  if (!stat.isDirectory()) return;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) collectTestFiles(join(path, entry.name), into);
    } else if (entry.isFile() && entry.name.endsWith('.test.ts')) {
      into.push(join(path, entry.name));
    }
  }
}

function findTestFiles(args: string[]): string[] {
  const roots = args.length > 0 ? args.map((arg) => resolve(process.cwd(), arg)) : [join(ROOT, 'test')];
  const files: string[] = [];
  for (const root of roots) {
    try {
      collectTestFiles(root, files);
    } catch {
      throw new Error(`no such test file or directory: ${relative(process.cwd(), root) || root}`);
    }
  }
  return [...new Set(files)].sort();
}

/** Hides the password of a URL the tester gave us before it is printed. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

function databaseUrlFromEnv(): string | undefined {
  const raw = process.env.DATABASE_URL?.trim();
  if (!raw) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new Error('DATABASE_URL is not a valid URL (expected mysql://user:pass@host:port/)');
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw new Error(`DATABASE_URL must be a mysql:// or mariadb:// URL, got ${parsed.protocol}//`);
  }
  // mysql2 and typeorm only understand mysql://; MariaDB speaks the same protocol.
  return 'mysql:' + raw.slice(parsed.protocol.length);
}

async function main(): Promise<number> {
  const files = findTestFiles(process.argv.slice(2));
  if (files.length === 0) {
    console.error('run-tests: no *.test.ts files found');
    return 1;
  }

  const started: Array<MariaDbService | KafkaMockService> = [];
  let runner: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stopServices = (): Promise<void> => {
    stopping ??= Promise.allSettled(started.map((service) => service.stop())).then(() => undefined);
    return stopping;
  };

  // On Ctrl-C / kill: pass the signal to the runner (it stops its test processes), stop our services, leave.
  const onSignal = (signal: NodeJS.Signals) => {
    if (runner?.pid !== undefined && runner.exitCode === null) runner.kill(signal);
    const killTimer = setTimeout(() => runner?.kill('SIGKILL'), 10_000);
    killTimer.unref();
    void stopServices().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const t0 = Date.now();
    const givenDb = databaseUrlFromEnv();
    const givenBrokers = process.env.KAFKA_BROKERS?.trim() || undefined;
    const [db, kafka] = await Promise.all([
      givenDb ? undefined : startMariaDb().then((s) => (started.push(s), s)),
      givenBrokers ? undefined : startKafkaMock().then((s) => (started.push(s), s)),
    ]);
    const mysqlUrl = givenDb ?? db!.url;
    const brokers = givenBrokers ?? kafka!.brokers;
    const elapsed = Date.now() - t0;
    console.log(
      `run-tests: ${db ? `started MariaDB ${db.version} pid=${db.pid} port=${db.port}` : `using DATABASE_URL ${redact(mysqlUrl)}`}; ` +
        `${kafka ? `started Kafka mock broker (kcat) pid=${kafka.pid} at ${kafka.brokers}` : `using KAFKA_BROKERS ${brokers}`}` +
        `${started.length > 0 ? ` in ${elapsed} ms` : ''}; running ${files.length} test file(s), ${CONCURRENCY} at a time`,
    );

    const args = [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${CONCURRENCY}`,
      '--test-reporter=tap',
      ...files.map((file) => relative(ROOT, file) || file),
    ];
    runner = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, TEST_MYSQL_URL: mysqlUrl, TEST_KAFKA_BROKERS: brokers },
    });
    const child = runner;
    return await new Promise<number>((resolveCode, reject) => {
      const timer = setTimeout(() => {
        console.error(`run-tests: the test run exceeded ${RUN_TIMEOUT_MS} ms; stopping it`);
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }, RUN_TIMEOUT_MS);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolveCode(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15));
      });
    });
  } finally {
    await stopServices();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`run-tests: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
