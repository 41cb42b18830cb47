/**
 * The gateway (and the echo baseline) run in CHILD processes, as in production: the load generator does not share
 * their event loop, and their memory can be read from /proc. Children are started with tsx, stopped by pid
 * (SIGTERM, then SIGKILL), and killed synchronously if the bench itself exits early.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const PROJECT_ROOT = resolve(__dirname, '..');

const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;
const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

export interface ChildService {
  readonly pid: number;
  /** The first JSON stdout line for which the readiness test held. */
  readonly ready: Record<string, unknown>;
  /** Peak resident set so far (VmHWM), in bytes; undefined when /proc is not readable. */
  peakRssBytes(): number | undefined;
  stop(): Promise<void>;
  /** The last lines of stderr (for error messages). */
  stderrTail(): string;
}

/**
 * Starts `node <script>` (compiled JavaScript) with `env` added, its stdout going to `logFile`, and waits until a JSON line
 * of that log satisfies `isReady`. Stdout goes to a FILE, not a pipe: the gateway logs every notice at info (as in
 * production) with synchronous writes, and a pipe read by a busy load generator would block it and skew the bench.
 */
export async function startChild(script: string, env: Record<string, string>, isReady: (line: Record<string, unknown>) => boolean, logFile: string): Promise<ChildService> {
  hookExit();
  const out = openSync(logFile, 'w');
  // BENCH_CPU_PROF=dir writes a V8 CPU profile of each child there when it exits (bench/profile-summary.ts reads it).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...profile, script], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', out, 'pipe'],
    });
  } finally {
    closeSync(out);
  }
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  const pid = child.pid;
  live.add(child);
  child.once('exit', () => live.delete(child));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });

  let ready: Record<string, unknown> | undefined;
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    while (!ready) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${script} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`${script} not ready within ${START_TIMEOUT_MS} ms:\n${stderr}`);
      ready = readyLine(logFile, isReady);
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stopProcess(child);
    throw err;
  }

  return {
    pid,
    ready,
    peakRssBytes: () => readVmHwm(pid),
    stop: () => stopProcess(child),
    stderrTail: () => stderr,
  };
}

function readyLine(logFile: string, isReady: (line: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (isReady(parsed)) return parsed;
    } catch {
      /* a partly written line */
    }
  }
  return undefined;
}

function readVmHwm(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace'>((r) => (timer = setTimeout(() => r('grace'), STOP_GRACE_MS)));
  const outcome = await Promise.race([exited.then(() => 'exited' as const), graceOver]);
  clearTimeout(timer);
  if (outcome === 'grace') {
    child.kill('SIGKILL');
    await exited;
  }
}
