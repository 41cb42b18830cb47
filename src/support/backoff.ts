/**
 * Retry pacing shared by the outbox relay and the work runner.
 */

/**
 * base * 2^(attempt-1), capped at max, with "equal jitter" (half fixed, half random) so many replicas or items
 * retrying at once spread out instead of hitting a recovering upstream in lockstep.
 */
export function equalJitterBackoff(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/** A sleep that `wake()` ends early: an idle polling loop reacts at once to new work or to a stop. */
export class InterruptibleSleep {
  private wakeCurrent: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeCurrent = done;
    }).finally(() => {
      this.wakeCurrent = undefined;
    });
  }

  wake(): void {
    this.wakeCurrent?.();
  }
}
