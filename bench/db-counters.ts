/** MariaDB's global statement counter, to report statements per operation (Questions counts every client statement). */
import { createConnection } from 'mysql2/promise';

export async function statementsSoFar(serverUrl: string): Promise<number> {
  const conn = await createConnection({ uri: serverUrl });
  try {
    const [rows] = await conn.query(`SHOW GLOBAL STATUS WHERE Variable_name = 'Questions'`);
    return Number((rows as Array<{ Value: string }>)[0]?.Value ?? NaN);
  } finally {
    await conn.end();
  }
}

/** Statements the server ran while `work` ran (all clients: the bench's own few are noise). */
export async function countStatements<T>(serverUrl: string, work: () => Promise<T>): Promise<{ result: T; statements: number }> {
  const before = await statementsSoFar(serverUrl);
  const result = await work();
  // The counting query itself is one statement; leave it out.
  return { result, statements: (await statementsSoFar(serverUrl)) - before - 1 };
}

/**
 * Waits (bounded) until the gateway's durable work is drained, so one measurement does not pay for the background
 * work the previous one left behind. Returns the items still open when it gave up (0 when drained).
 */
export async function waitForIdleWork(dbUrl: string, timeoutMs: number): Promise<number> {
  const conn = await createConnection({ uri: dbUrl });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [rows] = await conn.query(`SELECT COUNT(*) AS open FROM work_items WHERE status IN ('pending', 'in_flight') AND next_attempt_at <= ?`, [Date.now()]);
      const open = Number((rows as Array<{ open: number }>)[0]?.open ?? 0);
      if (open === 0 || Date.now() > deadline) return open;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await conn.end();
  }
}
