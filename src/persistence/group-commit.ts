/**
 * Group commit for read-free transactions (Database.atomically on MariaDB/MySQL).
 *
 * While a few such transactions are in flight, the ones that arrive meanwhile wait and are then sent together: one
 * round trip and one COMMIT for all of them instead of one each. Each caller still gets exactly its own results. If
 * the merged transaction fails, none of it is kept and every caller's statements are retried on their own, so a
 * caller gets its own error (a duplicate notice, say) and the others commit unharmed.
 */
import type { SqlStatement, StatementResult } from './statement-batch';

interface Waiting {
  readonly statements: readonly SqlStatement[];
  readonly resolve: (results: StatementResult[]) => void;
  readonly reject: (err: unknown) => void;
}

export interface GroupCommitOptions {
  /** Runs statements as one transaction (START … COMMIT), in one round trip. */
  readonly run: (statements: readonly SqlStatement[]) => Promise<StatementResult[]>;
  /** Transactions in flight at once; more callers wait and are merged. */
  readonly maxInFlight: number;
  /** Most statements merged into one transaction. */
  readonly maxStatements: number;
}

export class GroupCommit {
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(private readonly opts: GroupCommitOptions) {}

  submit(statements: readonly SqlStatement[]): Promise<StatementResult[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ statements, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.waiting.length > 0) {
      const group = this.takeGroup();
      this.inFlight++;
      void this.commit(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private takeGroup(): Waiting[] {
    const group: Waiting[] = [this.waiting.shift()!];
    let statements = group[0]!.statements.length;
    while (this.waiting.length > 0 && statements + this.waiting[0]!.statements.length <= this.opts.maxStatements) {
      const next = this.waiting.shift()!;
      statements += next.statements.length;
      group.push(next);
    }
    return group;
  }

  private async commit(group: readonly Waiting[]): Promise<void> {
    if (group.length > 1) {
      let results: StatementResult[] | undefined;
      try {
        results = await this.opts.run(group.flatMap((w) => w.statements));
      } catch {
        // Someone's statement failed (or the connection did): nothing was kept; each runs alone below.
      }
      if (results) {
        let at = 0;
        for (const w of group) {
          w.resolve(results.slice(at, at + w.statements.length));
          at += w.statements.length;
        }
        return;
      }
    }
    await Promise.all(group.map((w) => this.opts.run(w.statements).then(w.resolve, w.reject)));
  }
}
