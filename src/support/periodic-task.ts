/**
 * A background job run every `intervalMs`, counted from the end of the previous run (runs never overlap). Its timer
 * does not keep the process alive. stop() waits for a run in progress; the run can look at `halted` to end early.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;
  /** Set by stop(): a run in progress should end at its next step and leave the rest to a later run. */
  halted = false;

  constructor(
    private readonly o: {
      readonly intervalMs: number;
      readonly run: () => Promise<unknown>;
      /** A failed run is reported here; the next one runs as planned. */
      readonly onError: (err: unknown) => void;
    },
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.halted = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.halted = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.o
        .run()
        .catch((err: unknown) => this.o.onError(err))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.o.intervalMs);
    this.timer.unref();
  }
}
