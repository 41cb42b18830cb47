import { MIGRATIONS } from '../../migrations';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { SQLITE_FILE_NAME } from '../../src/persistence/database';
import { DATABASE_KINDS, openTestDatabase } from '../support/database';

const ROOT = resolve(__dirname, '../..');
const CLI = join(ROOT, 'src/persistence/migrate-cli.ts');
// Absolute, so the CLI can run from any working directory.
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

function runCli(env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: undefined, DATA_DIR: undefined, ...env };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  return new Promise((done) => {
    execFile(process.execPath, ['--import', TSX, CLI], { cwd: ROOT, env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

describe('npm run migrate (migrate-cli)', () => {
  for (const kind of DATABASE_KINDS) {
    test(`${kind}: runs the pending migration once, then reports the schema up to date`, async () => {
      // An empty database: created, not migrated.
      const t = await openTestDatabase(kind, { runMigrations: false });
      try {
        const env = kind === 'mysql' ? { DATABASE_URL: t.url } : { DATA_DIR: t.dataDir };
        const first = await runCli(env);
        assert.equal(first.code, 0, first.stderr);
        for (const m of MIGRATIONS) assert.match(first.stdout, new RegExp(`^${kind}: ran ${m.name}$`, 'm'));
        const applied = await t.db.dataSource.query('SELECT name FROM migrations');
        assert.equal(applied.length, MIGRATIONS.length);

        const second = await runCli(env);
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stdout, /schema up to date, no migration to run/);
        assert.doesNotMatch(second.stdout, /ran /);
      } finally {
        await t.drop();
      }
    });
  }

  test('with neither variable set it migrates ./data relative to the working directory', async () => {
    const cwdDir = mkdtempSync(join(tmpdir(), 'tg-migrate-cwd-'));
    try {
      const result = await new Promise<{ code: number; stdout: string }>((done) => {
        // tsx looks for tsconfig.json from the working directory; the decorators need ours.
        const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') };
        delete env.DATABASE_URL;
        delete env.DATA_DIR;
        execFile(process.execPath, ['--import', TSX, CLI], { cwd: cwdDir, env, timeout: 60_000 }, (err, stdout) =>
          done({ code: err ? 1 : 0, stdout }),
        );
      });
      assert.equal(result.code, 0);
      assert.match(result.stdout, /sqlite: ran InitialSchema/);
      assert.ok(existsSync(join(cwdDir, 'data', SQLITE_FILE_NAME)));
    } finally {
      rmSync(cwdDir, { recursive: true, force: true });
    }
  });

  test('a bad DATABASE_URL exits 1 with one line naming DATABASE_URL, without the password', async () => {
    const r = await runCli({ DATABASE_URL: 'postgres://app:hunter2secret@127.0.0.1/tg' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^migrate failed: DATABASE_URL has unsupported scheme "postgres"/);
    assert.doesNotMatch(r.stderr, /hunter2secret/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
