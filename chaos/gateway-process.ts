/**
 * The gateway as a child process (node --import tsx src/main.ts) on fixed ports, so the chaos driver can
 * SIGKILL it at any moment and start it again at the same addresses. Its output goes to a log file.
 * A process that exits by itself (not killed by us) is counted as a crash and started again by the supervisor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class GatewayProcess {
  private child: ChildProcess | undefined;
  private expectingExit = false;
  private supervising = true;
  kills = 0;
  crashes = 0;
  starts = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly logFile: string,
    readonly httpPort: number,
  ) {
    process.on('exit', () => this.child?.pid !== undefined && this.child.exitCode === null && process.kill(this.child.pid, 'SIGKILL'));
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and waits until /readyz answers 200 (bounded). */
  async start(): Promise<void> {
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...this.env },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.child = child;
    this.starts++;
    this.expectingExit = false;
    child.once('exit', (code, signal) => {
      if (this.expectingExit || !this.supervising) return;
      // Not our doing: a crash (e.g. the database went away mid start-up). Start it again after a pause.
      this.crashes++;
      process.stderr.write(`chaos: gateway exited by itself (${code ?? signal}) at ${new Date().toISOString()}; restarting\n`);
      void sleep(1_000).then(() => (this.supervising && this.child === child ? this.start().catch((e) => process.stderr.write(`chaos: restart failed: ${e}\n`)) : undefined));
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child !== child) return; // replaced by the supervisor meanwhile
      if (child.exitCode !== null || child.signalCode !== null) {
        await sleep(500);
        continue; // the exit handler restarts it
      }
      try {
        const res = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`, { signal: AbortSignal.timeout(1_000) });
        if (res.status === 200) return;
      } catch {
        /* not up yet */
      }
      await sleep(200);
    }
    throw new Error(`gateway not ready within 60 s; log: ${this.logFile}\n${this.logTail()}`);
  }

  /** SIGKILL: no graceful stop, in-flight calls and transactions are cut where they are. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined || !this.running) return;
    this.expectingExit = true;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, 'SIGKILL');
    await exited;
    this.kills++;
  }

  /** Graceful stop at the end of the run (SIGTERM, SIGKILL after 20 s). */
  async stop(): Promise<void> {
    this.supervising = false;
    const child = this.child;
    if (!child || child.pid === undefined || !this.running) return;
    this.expectingExit = true;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => this.running && child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  logTail(chars = 3_000): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  }
}
