/** `npm run demo`: the walk-through really happens, step by step, and prints the ledger it ends with. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEMO_MOBILE, DEMO_STEPS, ledgerLine, runDemo } from '../../demo/demo';
import { projectRoot } from '../../src/support/project-root';

describe('npm run demo', () => {
  it('walks one order through send, gate admission, audited partial refund and expiry, printing the final ledger', async () => {
    const lines: string[] = [];
    const result = await runDemo({ print: (l) => lines.push(l) });
    const out = lines.join('\n');

    // Every step happened, in order.
    assert.deepEqual(result.steps, [...DEMO_STEPS]);
    assert.deepEqual(result.events, ['order.issued', 'code.sent', 'write-off.recorded', 'write-off.confirmed', 'refund.requested', 'refund.approved', 'order.expired']);

    // The final ledger as GetOrder returned it: 3 bought, 1 admitted, 1 refunded after the audit, 1 expired.
    assert.deepEqual(
      { ...result.finalLedger },
      { purchased: 3, available: 0, consumed: 1, refundPending: 0, refunded: 1, expired: 1 },
    );
    assert.ok(out.includes('Final ledger: purchased 3 · available 0 · consumed 1 · refund pending 0 · refunded 1 · expired 1'), out);
    assert.equal(result.finalOrder.vouchers.length, 1);

    // The ledger is printed after each step, moving the way the business says.
    const ledgers = lines.filter((l) => l.startsWith('  state ') && l.includes('; ledger: ')).map((l) => l.slice(l.indexOf('ledger: ') + 8));
    assert.deepEqual(ledgers, [
      ledgerLine({ purchased: 3, available: 3, consumed: 0, refundPending: 0, refunded: 0, expired: 0 }),
      ledgerLine({ purchased: 3, available: 2, consumed: 1, refundPending: 0, refunded: 0, expired: 0 }),
      ledgerLine({ purchased: 3, available: 1, consumed: 1, refundPending: 1, refunded: 0, expired: 0 }),
      ledgerLine({ purchased: 3, available: 1, consumed: 1, refundPending: 0, refunded: 1, expired: 0 }),
      ledgerLine({ purchased: 3, available: 0, consumed: 1, refundPending: 0, refunded: 1, expired: 1 }),
    ]);
    assert.match(out, /"state": "ORDER_STATE_EXPIRED"/);

    // No personal data in the output: the mobile only masked, the voucher code never in clear.
    assert.ok(!out.includes(DEMO_MOBILE), 'clear mobile printed');
    assert.match(out, /"mobileMasked": "139\*\*\*\*1234"/);
    const code = result.finalOrder.vouchers[0]!.code;
    assert.ok(code.length > 4 && !out.includes(code), 'clear voucher code printed');
  });

  it('runs as a process (what `npm run demo` starts), bounded, and exits 0', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', join('demo', 'demo.ts')], {
      cwd: projectRoot(),
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DATABASE_URL: '', KAFKA_BROKERS: '' },
    });
    assert.equal(run.status, 0, `exit ${run.status}\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^Final ledger: purchased 3 · available 0 · consumed 1 · refund pending 0 · refunded 1 · expired 1$/m);
    assert.ok(!run.stdout.includes(DEMO_MOBILE));
  });
});
