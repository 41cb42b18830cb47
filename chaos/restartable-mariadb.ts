/**
 * A MariaDB the chaos run can restart: unlike test/support/services.ts startMariaDb (whose stop() removes the
 * datadir), this one keeps its datadir and port across stop()/start(), like a database server being restarted
 * under a running gateway. Same durability settings as the test harness. The process 'exit' hook kills it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { findBinary, freePort, mariadbArgs } from '../test/support/services';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class RestartableMariaDb {
  private child: ChildProcess | undefined;
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}/`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async create(): Promise<RestartableMariaDb> {
    const dir = mkdtempSync(join(tmpdir(), 'tg-chaos-mariadb-'));
    await new Promise<void>((resolve, reject) =>
      execFile(
        findBinary('mariadb-install-db'),
        ['--no-defaults', '--user=root', `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
        { timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
        (err, _out, stderr) => (err ? reject(new Error(`mariadb-install-db failed: ${err.message}\n${String(stderr).slice(-2000)}`)) : resolve()),
      ),
    );
    const db = new RestartableMariaDb(dir, await freePort());
    process.on('exit', () => {
      if (db.child?.pid !== undefined && db.child.exitCode === null) {
        try {
          process.kill(db.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });
    await db.start();
    return db;
  }

  /** Starts mariadbd on the same datadir and port; resolves once it answers a query. */
  async start(): Promise<void> {
    const child = spawn(
      findBinary('mariadbd'),
      mariadbArgs({ dir: this.dir, datadir: join(this.dir, 'data'), port: this.port, errorLog: join(this.dir, 'error.log') }),
      { stdio: 'ignore' },
    );
    this.child = child;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mariadbd exited (${child.exitCode ?? child.signalCode}); see ${join(this.dir, 'error.log')}`);
      try {
        const c = await createConnection({ host: '127.0.0.1', port: this.port, user: 'root', connectTimeout: 1_000 });
        await c.query('SELECT 1');
        await c.end();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`mariadbd not ready on ${this.port}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  }

  /** Stops the server by its pid (SIGTERM, SIGKILL after 15 s); the datadir stays. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
