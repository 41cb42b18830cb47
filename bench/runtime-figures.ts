/**
 * What the machine and the gateway's runtime did while a load ran: CPU per process (from /proc), and the gateway's
 * own event-loop delay and GC pauses (from its /metrics, prom-client's default metrics). They explain a latency
 * figure (a saturated machine, a stalled event loop) without changing it: one scrape before and one after.
 */
import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const TICKS_PER_SECOND = 100;
/**
 * prom-client's loop monitor (eventLoopMonitoringPrecision, default 10 ms): each of its samples is the time between
 * two of its timer callbacks, so an idle loop reads this much; the delay is what lies above it.
 */
const LOOP_SAMPLE_MS = 10;

export interface RuntimeWindow {
  /** CPU used during the window, in cores (1 = one core busy all along), per named process; undefined: not readable. */
  readonly cpuCores: Readonly<Record<string, number | undefined>>;
  /** The gateway's event-loop delay over the window: how late its timers ran, beyond their 10 ms interval. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** Stop-the-world collections in the window: full (mark-compact) and young-generation ones. */
  readonly majorGcs: GcTally;
  readonly minorGcs: GcTally;
}

export interface GcTally {
  readonly count: number;
  readonly totalMs: number;
}

/**
 * Runs `load` and reports the window. `pids` names the processes whose CPU to count (the load generator is this
 * process: give `process.pid`). The gateway's loop-delay histogram is reset by each scrape, so the second scrape
 * covers the window alone.
 */
export async function measureRuntime<T>(
  o: { gatewayHttpPort: number; pids: Readonly<Record<string, number>> },
  load: () => Promise<T>,
): Promise<{ result: T; window: RuntimeWindow }> {
  const metricsUrl = `http://127.0.0.1:${o.gatewayHttpPort}/metrics`;
  const before = parseMetrics(await scrape(metricsUrl));
  const cpuBefore = Object.fromEntries(Object.entries(o.pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const started = performance.now();
  const result = await load();
  const elapsedS = (performance.now() - started) / 1000;
  const cpuCores = Object.fromEntries(
    Object.entries(o.pids).map(([name, pid]) => {
      const a = cpuBefore[name];
      const b = cpuSeconds(pid);
      return [name, a === undefined || b === undefined ? undefined : (b - a) / elapsedS];
    }),
  );
  const after = parseMetrics(await scrape(metricsUrl));
  const gc = (kind: string): GcTally => ({
    count: (after.get(`nodejs_gc_duration_seconds_count{kind="${kind}"}`) ?? 0) - (before.get(`nodejs_gc_duration_seconds_count{kind="${kind}"}`) ?? 0),
    totalMs: ((after.get(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`) ?? 0) - (before.get(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`) ?? 0)) * 1000,
  });
  return {
    result,
    window: {
      cpuCores,
      loopDelayP99Ms: Math.max(0, (after.get('nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000 - LOOP_SAMPLE_MS),
      loopDelayMaxMs: Math.max(0, (after.get('nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000 - LOOP_SAMPLE_MS),
      majorGcs: gc('major'),
      minorGcs: gc('minor'),
    },
  };
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res.text();
}

/** Prometheus text format, samples only: `name{labels} value` -> value (labels kept verbatim in the key). */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** User + system CPU time of a process so far, in seconds; undefined when it is gone or /proc is not readable. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}
