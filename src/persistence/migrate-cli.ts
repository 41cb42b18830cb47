/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded SQLite database under
 * DATA_DIR (default ./data), and prints what ran. Exit code 1 on failure, with one line naming the problem.
 */
import { openDatabase, runPendingMigrations } from './database';

async function main(): Promise<number> {
  const url = process.env.DATABASE_URL?.trim() || undefined;
  const dataDir = process.env.DATA_DIR?.trim() || './data';
  const db = await openDatabase({ url, dataDir, runMigrations: false });
  try {
    const ran = await runPendingMigrations(db);
    if (ran.length === 0) console.log(`${db.kind}: schema up to date, no migration to run`);
    for (const name of ran) console.log(`${db.kind}: ran ${name}`);
    return 0;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`migrate failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
