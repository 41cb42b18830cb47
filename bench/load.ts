/**
 * Bounded load generators for the bench: a closed loop (N workers, each sends its next request when the last one
 * answered) and an open loop (requests sent on a fixed schedule, latency counted from the SCHEDULED send time, so a
 * stall shows up as latency instead of silently lowering the rate). Both stop at a request count AND a duration.
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

export interface LoadResult {
  /** Requests that completed without error. */
  readonly ok: number;
  readonly failed: number;
  /** Open loop only: requests never sent because too many were already in flight. */
  readonly dropped: number;
  readonly elapsedMs: number;
  /** Completed requests per second over the whole window. */
  readonly perSecond: number;
  /** Latency of successful requests, in microseconds. */
  readonly latency: RecordableHistogram;
  /** First error message seen (for the report), if any. */
  readonly firstError?: string;
}

export function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
}

/** Records a duration in ms into a microsecond histogram. */
export function recordMs(h: RecordableHistogram, ms: number): void {
  h.record(Math.max(1, Math.round(ms * 1000)));
}

export function percentileMs(h: RecordableHistogram, p: number): number {
  return h.count === 0 ? NaN : h.percentile(p) / 1000;
}

/** `send(i)` performs request number i; a thrown error counts as failed. */
export type Send = (i: number) => Promise<void>;

export async function closedLoop(opts: { concurrency: number; maxRequests: number; maxMs: number; send: Send }): Promise<LoadResult> {
  const latency = newHistogram();
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + opts.maxMs;
  const worker = async () => {
    while (next < opts.maxRequests && performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      try {
        await opts.send(i);
        recordMs(latency, performance.now() - t0);
        ok++;
      } catch (err) {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsedMs = performance.now() - started;
  return { ok, failed, dropped: 0, elapsedMs, perSecond: (ok * 1000) / elapsedMs, latency, firstError };
}

export async function openLoop(opts: { ratePerSecond: number; durationMs: number; maxInFlight: number; send: Send }): Promise<LoadResult> {
  const latency = newHistogram();
  const total = Math.floor((opts.ratePerSecond * opts.durationMs) / 1000);
  const intervalMs = 1000 / opts.ratePerSecond;
  let ok = 0;
  let failed = 0;
  let dropped = 0;
  let inFlight = 0;
  let firstError: string | undefined;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  let i = 0;
  while (i < total) {
    const now = performance.now();
    // Send everything that is due; a late tick sends its backlog at once, each timed from its own schedule.
    while (i < total && started + i * intervalMs <= now) {
      const scheduled = started + i * intervalMs;
      if (inFlight >= opts.maxInFlight) {
        dropped++;
        i++;
        continue;
      }
      inFlight++;
      const n = i++;
      pending.push(
        opts.send(n).then(
          () => {
            recordMs(latency, performance.now() - scheduled);
            ok++;
          },
          (err: unknown) => {
            failed++;
            firstError ??= err instanceof Error ? err.message : String(err);
          },
        ).finally(() => inFlight--),
      );
    }
    const wait = started + i * intervalMs - performance.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(wait, 5))));
  }
  await Promise.all(pending);
  const elapsedMs = performance.now() - started;
  return { ok, failed, dropped, elapsedMs, perSecond: (ok * 1000) / elapsedMs, latency, firstError };
}
