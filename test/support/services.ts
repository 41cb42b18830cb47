/**
 * Throwaway backing services for the tests: a real MariaDB server and librdkafka's mock Kafka cluster (via kcat).
 *
 * Each service runs as a child process in its own temp dir and is stopped by PID (SIGTERM, then SIGKILL). Three
 * layers keep it from outliving us: stop() on the normal path, a synchronous kill on process 'exit', and a tiny
 * shell watchdog that kills the service if our process dies without running either (SIGKILL, OOM).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, readFileSync, accessSync, constants as fsConstants } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createConnection } from 'mysql2/promise';

export interface MariaDbService {
  /** `mysql://root@127.0.0.1:PORT/` - no database selected; tests create their own schemas. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  /** Temp dir holding datadir, socket, binlog and error log; removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

export interface KafkaMockService {
  /** Comma-separated bootstrap list, e.g. `127.0.0.1:40139`. */
  readonly brokers: string;
  readonly port: number;
  readonly pid: number;
  /** kcat's working dir; removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const LOG_TAIL_CHARS = 4_000;

/** Services still running, so the exit hook can kill them even if nobody called stop(). */
const live = new Map<number, { dir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: signal the process and remove its dir; the kernel does the rest.
  process.on('exit', () => {
    for (const [pid, { dir }] of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    }
    live.clear();
  });
}

/** Locates a binary on PATH, then in the sbin/bin dirs Debian uses (mariadbd lives in /usr/sbin, often not on PATH). */
export function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  throw new Error(`${name} not found on PATH or in /usr/sbin, /usr/bin (install it, e.g. apt-get install -y ${name === 'kcat' ? 'kcat' : 'mariadb-server'})`);
}

/** A port that was free a moment ago. Callers retry on EADDRINUSE, since another process may grab it first. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceMs` for the child to exit, then SIGKILL. Resolves once the process is gone. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  const forced = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (forced && isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* exited meanwhile */
    }
    await Promise.race([exited, sleep(2_000)]);
  }
}

/**
 * Kills `servicePid` and removes `dir` if the process `ownerPid` dies first. Runs detached so it survives us;
 * it ends by itself as soon as either process is gone, so it never outlives the service.
 */
function startWatchdog(ownerPid: number, servicePid: number, dir: string): ChildProcess {
  const script = [
    'owner=$1; svc=$2; dir=$3',
    'while kill -0 "$owner" 2>/dev/null && kill -0 "$svc" 2>/dev/null; do sleep 1; done',
    'if kill -0 "$svc" 2>/dev/null; then',
    '  kill -TERM "$svc" 2>/dev/null',
    '  i=0; while [ $i -lt 100 ] && kill -0 "$svc" 2>/dev/null; do sleep 0.1; i=$((i+1)); done',
    '  kill -KILL "$svc" 2>/dev/null',
    '  rm -rf -- "$dir"',
    'fi',
  ].join('\n');
  const watchdog = spawn('/bin/sh', ['-c', script, 'service-watchdog', String(ownerPid), String(servicePid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  return watchdog;
}

function stopWatchdog(watchdog: ChildProcess): void {
  if (watchdog.pid !== undefined && watchdog.exitCode === null && watchdog.signalCode === null) {
    try {
      process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Keeps the last few KB a child wrote, for error messages, and keeps draining the pipe so the child never blocks. */
function tailOf(stream: NodeJS.ReadableStream | null): { text(): string } {
  let buffer = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    buffer = (buffer + chunk).slice(-LOG_TAIL_CHARS);
  });
  return { text: () => buffer };
}

function run(file: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} failed: ${error.message}\n${String(stderr).slice(-LOG_TAIL_CHARS) || String(stdout).slice(-LOG_TAIL_CHARS)}`));
      else resolve();
    });
  });
}

/**
 * Starts a fresh MariaDB in a temp datadir. Durability settings match production (full fsync per commit, binlog
 * with sync_binlog=1), so timing-sensitive tests see realistic commit costs. The server's default isolation is
 * left at MariaDB's REPEATABLE-READ, like a stock server: code that needs READ COMMITTED must ask for it.
 */
export async function startMariaDb(): Promise<MariaDbService> {
  const mariadbd = findBinary('mariadbd');
  const installDb = findBinary('mariadb-install-db');
  const dir = mkdtempSync(join(tmpdir(), 'tg-mariadb-'));
  const datadir = join(dir, 'data');
  try {
    await run(installDb, ['--no-defaults', '--user=root', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db'], 60_000);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  let lastError: unknown;
  // The free port can be taken between probing and binding; a couple of retries make that race harmless.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    try {
      return await launchMariaDb(mariadbd, dir, datadir, port);
    } catch (error) {
      lastError = error;
      if (!(error instanceof PortInUseError)) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

class PortInUseError extends Error {}

/**
 * The arguments of a throwaway mariadbd: its files under `dir`, listening on 127.0.0.1:`port` only, and the
 * production settings that matter for what tests and the chaos suite measure. Shared with chaos/restartable-mariadb.ts.
 */
export function mariadbArgs(o: { dir: string; datadir: string; port: number; errorLog: string }): string[] {
  return [
    '--no-defaults',
    '--user=root',
    `--datadir=${o.datadir}`,
    `--socket=${join(o.dir, 'mariadb.sock')}`,
    `--pid-file=${join(o.dir, 'mariadb.pid')}`,
    `--port=${o.port}`,
    '--bind-address=127.0.0.1',
    '--skip-name-resolve',
    `--log-error=${o.errorLog}`,
    // Honest durability: what production runs with.
    '--innodb-flush-log-at-trx-commit=1',
    '--server-id=1',
    `--log-bin=${join(o.dir, 'binlog')}`,
    '--binlog-format=ROW',
    '--sync-binlog=1',
    // Room for pools from several test files running side by side.
    '--max-connections=500',
    // Scenic-spot names and visitor names are Chinese: utf8mb4 everywhere, as in production.
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_unicode_ci',
    '--innodb-buffer-pool-size=128M',
    // Fail fast instead of 50 s default waits when a test deadlocks on a row lock.
    '--innodb-lock-wait-timeout=10',
  ];
}

async function launchMariaDb(mariadbd: string, dir: string, datadir: string, port: number): Promise<MariaDbService> {
  const errorLog = join(dir, `error-${port}.log`);
  const child = spawn(
    mariadbd,
    mariadbArgs({ dir, datadir, port, errorLog }),
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const stderr = tailOf(child.stderr);
  const pid = child.pid;
  if (pid === undefined) throw new Error('mariadbd did not start');
  installExitHook();
  live.set(pid, { dir });
  const watchdog = startWatchdog(process.pid, pid, dir);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await stopChild(child, STOP_GRACE_MS);
      stopWatchdog(watchdog);
      live.delete(pid);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const logText = () => {
    const fromFile = existsSync(errorLog) ? readFileSync(errorLog, 'utf8').slice(-LOG_TAIL_CHARS) : '';
    return fromFile || stderr.text();
  };

  const url = `mysql://root@127.0.0.1:${port}/`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const log = logText();
        if (/Address already in use|Can't start server: Bind on TCP\/IP port/i.test(log)) throw new PortInUseError(`port ${port} in use`);
        throw new Error(`mariadbd exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${log}`);
      }
      try {
        const connection = await createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1_000 });
        try {
          const [rows] = await connection.query('SELECT VERSION() AS version');
          const version = String((rows as Array<{ version: string }>)[0]?.version ?? 'unknown');
          child.unref();
          (child.stderr as { unref?: () => void } | null)?.unref?.();
          return { url, port, pid, version, dir, stop };
        } finally {
          await connection.end().catch(() => connection.destroy());
        }
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`mariadbd on port ${port} not ready after ${READY_TIMEOUT_MS} ms: ${(error as Error).message}\n${logText()}`);
        await sleep(100);
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Starts librdkafka's mock cluster (one broker) through a kcat consumer that runs until killed. The broker is a
 * real Kafka-protocol TCP endpoint; it keeps everything in memory, so use unique topic names per test.
 */
export async function startKafkaMock(): Promise<KafkaMockService> {
  const kcat = findBinary('kcat');
  const dir = mkdtempSync(join(tmpdir(), 'tg-kafka-'));
  const child = spawn(kcat, ['-X', 'test.mock.num.brokers=1', '-b', '127.0.0.1:1', '-C', '-t', '__keepalive', '-o', 'end'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: dir,
  });
  const pid = child.pid;
  if (pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('kcat did not start');
  }
  installExitHook();
  live.set(pid, { dir });
  const watchdog = startWatchdog(process.pid, pid, dir);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await stopChild(child, 3_000);
      stopWatchdog(watchdog);
      live.delete(pid);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  // librdkafka logs: "Mock cluster enabled: original bootstrap.servers and security.protocol ignored and replaced with 127.0.0.1:40139"
  let seen = '';
  const brokers = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`kcat mock did not report its broker address within ${READY_TIMEOUT_MS} ms:\n${seen}`)), READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
      const match = /replaced with ((?:[\w.-]+:\d+)(?:,[\w.-]+:\d+)*)/.exec(seen);
      if (match) finish(undefined, match[1]);
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`kcat exited (${code ?? signal}) before the mock broker was up:\n${seen}`));
    function finish(error?: Error, address?: string) {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(address as string);
    }
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  // Keep draining stderr ("Reached end of topic" lines) so kcat never blocks on a full pipe.
  child.stderr?.resume();
  child.unref();
  (child.stderr as { unref?: () => void } | null)?.unref?.();

  const port = Number(brokers.split(',')[0]!.split(':').pop());
  return { brokers, port, pid, dir, stop };
}

/** The MariaDB the test run provides (test/run-tests.ts exports TEST_MYSQL_URL); fails loudly when missing. */
export function testMysqlUrl(): string {
  const url = process.env.TEST_MYSQL_URL;
  if (!url) throw new Error('TEST_MYSQL_URL is not set: run tests through `npm test` (test/run-tests.ts) or export DATABASE_URL');
  return url;
}
