/**
 * Retention of finished work: `done` and `abandoned` items are deleted once they have been finished for longer than
 * the retention (default 30 days), so `work_items` grows with the open work and the kinds kept, not with every
 * admission ever made. Open items (pending, in_flight, parked) are never touched, whatever their age.
 *
 * - Kept kinds: items that are still read after they finish (the codes last sent to Taobao and the QR images
 *   uploaded are read from the order's send/resend items) are named by the composition root and never deleted.
 * - A finished item's idempotency key is free again once it is deleted: every key is unique per intended effect
 *   (a write-off's serial, a refund's id, a notice's key), so only a repeat of that same effect arriving after the
 *   retention could enqueue it again.
 * - How: walks the table by primary key from a cursor kept in memory, `batchSize` rows per statement and at most
 *   `maxBatches` statements per run, deleting the rows due among them; a pass ends at the first row created inside
 *   the retention (ids grow with time), and the next run starts over from the first id. No index beyond the primary
 *   key is read or needed, and rows kept are read again only once per pass. Replicas may purge at once: a DELETE
 *   re-checks the status and finds deleted rows gone.
 */
import { systemClock, type Clock } from '../domain/model';
import type { Database } from '../persistence/database';
import { runAlone } from '../persistence/statement-batch';
import { PeriodicTask } from '../support/periodic-task';
import { positive } from '../support/positive-option';

const FINISHED = ['done', 'abandoned'] as const;

export interface WorkPurgeOptions {
  readonly db: Database;
  readonly clock?: Clock;
  /** Finished items are kept this long after they finished (their last update). Default 30 days. */
  readonly retentionMs?: number;
  /** Kinds never deleted: their payload is read after they finish. */
  readonly keepKinds?: readonly string[];
  /** Time between runs (default 60 s). */
  readonly intervalMs?: number;
  /** Rows read per statement (default 500) and statements per run (default 20). */
  readonly batchSize?: number;
  readonly maxBatches?: number;
  readonly logger?: { info(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

export interface WorkPurgeRun {
  /** Items deleted by this run. */
  readonly deleted: number;
  /** True when the run reached the end of a pass (the next one starts over from the first id). */
  readonly passEnded: boolean;
}

interface ScannedRow {
  readonly id: number | string;
  readonly kind: string;
  readonly status: string;
  readonly createdAt: number | string;
  readonly updatedAt: number | string;
}

export class WorkPurge {
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly retentionMs: number;
  private readonly keepKinds: ReadonlySet<string>;
  private readonly batchSize: number;
  private readonly maxBatches: number;
  /** The last id this pass has looked at. */
  private cursor = 0;
  private readonly task: PeriodicTask;

  constructor(opts: WorkPurgeOptions) {
    this.db = opts.db;
    this.clock = opts.clock ?? systemClock;
    this.retentionMs = positive(opts.retentionMs, 30 * 24 * 3_600_000);
    this.keepKinds = new Set(opts.keepKinds ?? []);
    this.batchSize = Math.min(5_000, positive(opts.batchSize, 500));
    this.maxBatches = positive(opts.maxBatches, 20);
    this.task = new PeriodicTask({
      intervalMs: positive(opts.intervalMs, 60_000),
      run: async () => {
        const run = await this.runOnce();
        if (run.deleted > 0) opts.logger?.info({ deleted: run.deleted }, 'purged finished work items');
      },
      onError: (err) => opts.logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'work purge failed'),
    });
  }

  start(): void {
    this.task.start();
  }

  /** Stops the timer and waits for a run in progress (which ends after its current statement). */
  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One bounded run: up to `maxBatches` statements' worth of rows from the cursor on. */
  async runOnce(): Promise<WorkPurgeRun> {
    const cutoff = this.clock.now() - this.retentionMs;
    let deleted = 0;
    for (let i = 0; i < this.maxBatches; i++) {
      const rows: ScannedRow[] = await this.db.read((em) =>
        em.query(
          `SELECT id, kind, status, created_at AS createdAt, updated_at AS updatedAt FROM work_items WHERE id > ? ORDER BY id LIMIT ?`,
          [this.cursor, this.batchSize],
        ),
      );
      // Rows from the first one created inside the retention on are left for a later pass.
      const young = rows.findIndex((r) => Number(r.createdAt) >= cutoff);
      const looked = young === -1 ? rows : rows.slice(0, young);
      const due = looked
        .filter((r) => (FINISHED as readonly string[]).includes(r.status) && Number(r.updatedAt) < cutoff && !this.keepKinds.has(r.kind))
        .map((r) => Number(r.id));
      if (due.length > 0) {
        const list = due.map(() => '?').join(', ');
        const statuses = FINISHED.map(() => '?').join(', ');
        // Re-checked in the DELETE: a row read as finished stays finished, but another replica may have deleted it.
        const result = await runAlone(this.db, { sql: `DELETE FROM work_items WHERE id IN (${list}) AND status IN (${statuses})`, params: [...due, ...FINISHED] });
        deleted += result.affected;
      }
      const last = looked[looked.length - 1];
      if (last) this.cursor = Number(last.id);
      if (young !== -1 || rows.length < this.batchSize) {
        this.cursor = 0;
        return { deleted, passEnded: true };
      }
      if (this.task.halted) break;
    }
    return { deleted, passEnded: false };
  }
}
