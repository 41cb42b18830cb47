/**
 * Model-based property test of the order aggregate: thousands of random operation sequences run
 * against order.ts and, side by side, against a deliberately naive model written from the business
 * rules. After every step the two must agree (accepted with the same quantities, or rejected for the
 * same reason), and the real snapshot must keep every invariant.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { assertLedger } from '../../src/domain/ledger';
import * as O from '../../src/domain/order';
import type { OrderResult, OrderSnapshot } from '../../src/domain/order';
import { ORDER_TRANSITIONS, OrderEvent, deriveState, type OrderPhase } from '../../src/domain/order-state-machine';
import { canRefundExpired, isWithinValidity } from '../../src/domain/validity-rules';
import { REVERSE_WINDOW_MS } from '../../src/domain/write-off-rules';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2025, 0, 1, 16); // 2025-01-02 00:00 GMT+8

// ---- operations ----

type Op =
  | { t: 'advance'; ms: number }
  | { t: 'jump'; to: 'start' | 'end' | 'refundDeadline' | 'reverseDeadline'; offset: number }
  | { t: 'startIssue' }
  | { t: 'markIssued' }
  | { t: 'markIssueFailed' }
  | { t: 'close' }
  | { t: 'admit'; k: number; reuseSerial: number | null }
  | { t: 'reverse'; pick: number; countDelta: number; unknownSerial: boolean }
  | { t: 'refund'; k: number }
  | { t: 'approve'; k: number }
  | { t: 'reject'; k: number }
  | { t: 'expire' }
  | { t: 'changeValidity'; dStart: number; dEnd: number; malformed: boolean };

const count = fc.integer({ min: 0, max: 7 });
/** True about once in n draws. */
const oneIn = (n: number) => fc.integer({ min: 1, max: n }).map((x) => x === 1);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .oneof(
        { weight: 5, arbitrary: fc.integer({ min: 0, max: 30 * MIN }) },
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 3 * HOUR }) },
        // The rule boundaries themselves: the 2-hour reversal window, the 5-day expired-refund grace.
        { weight: 1, arbitrary: fc.constantFrom(REVERSE_WINDOW_MS, REVERSE_WINDOW_MS + 1, DAY, 4 * DAY, 5 * DAY, 6 * DAY) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * DAY }) },
      )
      .map((ms): Op => ({ t: 'advance', ms })),
  },
  {
    // Straight onto a rule boundary (or 1 ms either side), when it is not in the past.
    weight: 2,
    arbitrary: fc
      .record({
        to: fc.constantFrom('start' as const, 'end' as const, 'refundDeadline' as const, 'reverseDeadline' as const),
        offset: fc.constantFrom(-1, 0, 1),
      })
      .map((r): Op => ({ t: 'jump', ...r })),
  },
  { weight: 2, arbitrary: fc.constantFrom<Op>({ t: 'startIssue' }, { t: 'markIssued' }, { t: 'markIssueFailed' }, { t: 'close' }) },
  {
    weight: 6,
    arbitrary: fc
      .record({ k: count, reuseSerial: fc.option(fc.nat(20), { freq: 8 }) })
      .map((r): Op => ({ t: 'admit', ...r })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ pick: fc.nat(20), countDelta: fc.constantFrom(0, 0, 0, 0, 1, -1), unknownSerial: oneIn(15) })
      .map((r): Op => ({ t: 'reverse', ...r })),
  },
  { weight: 4, arbitrary: count.map((k): Op => ({ t: 'refund', k })) },
  { weight: 3, arbitrary: count.map((k): Op => ({ t: 'approve', k })) },
  { weight: 3, arbitrary: count.map((k): Op => ({ t: 'reject', k })) },
  { weight: 2, arbitrary: fc.constant<Op>({ t: 'expire' }) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        dStart: fc.integer({ min: -2 * DAY, max: DAY }),
        dEnd: fc.integer({ min: -DAY, max: 4 * DAY }),
        malformed: oneIn(10),
      })
      .map((r): Op => ({ t: 'changeValidity', ...r })),
  },
);

const scenarioArb = fc.record({
  purchased: fc.integer({ min: 1, max: 6 }),
  startOffset: fc.integer({ min: -DAY, max: DAY }),
  length: fc.integer({ min: 0, max: 4 * DAY }),
  prefix: fc.constantFrom<'issued' | 'issuing' | 'none'>('issued', 'issued', 'issued', 'issued', 'issued', 'issuing', 'issuing', 'none'),
  ops: fc.array(opArb, { minLength: 10, maxLength: 60, size: 'max' }),
});

// ---- the naive model ----

interface ModelWriteOff {
  serial: string;
  count: number;
  at: number;
  reversedAt: number | null;
}

interface Model {
  phase: OrderPhase;
  purchased: number;
  available: number;
  consumed: number;
  pending: number;
  refunded: number;
  expired: number;
  start: number;
  end: number;
  writeOffs: ModelWriteOff[];
}

type Expected = { ok: true; model: Model } | { ok: false; reason: string };

const no = (reason: string): Expected => ({ ok: false, reason });
const yes = (m: Model, patch: Partial<Model>): Expected => ({ ok: true, model: { ...m, ...patch } });

function issuedGuard(m: Model): Expected | null {
  if (m.phase === 'closed') return no('ORDER_CLOSED');
  if (m.phase !== 'issued') return no('NOT_ISSUED');
  return null;
}

function modelRefundable(m: Model, now: number): number {
  if (m.phase !== 'issued') return 0;
  return m.available + (now <= m.end + 5 * DAY ? m.expired : 0);
}

/** What the business rules say should happen; `serialFor` names the serial the admission will use. */
function expect(m: Model, op: Op, now: number, serial: string): Expected {
  switch (op.t) {
    case 'advance':
    case 'jump':
      return yes(m, {});
    case 'startIssue':
      if (m.phase === 'issuing') return no('ISSUE_IN_PROGRESS');
      if (m.phase === 'issued') return no('ALREADY_ISSUED');
      if (m.phase === 'closed') return no('ORDER_CLOSED');
      return yes(m, { phase: 'issuing' });
    case 'markIssued':
    case 'markIssueFailed':
      if (m.phase === 'issued') return no('ALREADY_ISSUED');
      if (m.phase === 'closed') return no('ORDER_CLOSED');
      if (m.phase !== 'issuing') return no('NOT_ISSUING');
      return yes(m, { phase: op.t === 'markIssued' ? 'issued' : 'issue-failed' });
    case 'close':
      if (m.phase === 'issuing') return no('ISSUE_IN_PROGRESS');
      if (m.phase === 'issued') return no('ALREADY_ISSUED');
      if (m.phase === 'closed') return no('ORDER_CLOSED');
      return yes(m, { phase: 'closed' });
    case 'admit': {
      if (op.k <= 0) return no('NON_POSITIVE_COUNT');
      const g = issuedGuard(m);
      if (g) return g;
      if (m.writeOffs.some((w) => w.serial === serial)) return no('DUPLICATE_SERIAL');
      if (now < m.start) return no('NOT_YET_VALID');
      if (now > m.end) return no('EXPIRED');
      if (m.available < op.k) return no('NOT_ENOUGH_AVAILABLE');
      return yes(m, {
        available: m.available - op.k,
        consumed: m.consumed + op.k,
        writeOffs: [...m.writeOffs, { serial, count: op.k, at: now, reversedAt: null }],
      });
    }
    case 'reverse': {
      const w = m.writeOffs.find((x) => x.serial === serial);
      if (!w) return no('WRITE_OFF_NOT_FOUND');
      if (w.reversedAt !== null) return no('ALREADY_REVERSED');
      if (now - w.at > 2 * HOUR) return no('REVERSE_WINDOW_PASSED');
      const k = w.count + op.countDelta;
      if (k !== w.count) return no('COUNT_MISMATCH');
      const afterEnd = now > m.end;
      return yes(m, {
        consumed: m.consumed - k,
        available: m.available + (afterEnd ? 0 : k),
        expired: m.expired + (afterEnd ? k : 0),
        writeOffs: m.writeOffs.map((x) => (x === w ? { ...x, reversedAt: now } : x)),
      });
    }
    case 'refund': {
      if (op.k <= 0) return no('NON_POSITIVE_COUNT');
      const g = issuedGuard(m);
      if (g) return g;
      if (op.k > modelRefundable(m, now)) return no('EXCEEDS_REFUNDABLE');
      const fromAvailable = Math.min(op.k, m.available);
      return yes(m, {
        available: m.available - fromAvailable,
        expired: m.expired - (op.k - fromAvailable),
        pending: m.pending + op.k,
      });
    }
    case 'approve':
    case 'reject': {
      const g = issuedGuard(m);
      if (g) return g;
      if (op.k <= 0) return no('NON_POSITIVE_COUNT');
      if (m.pending < op.k) return no('NOT_ENOUGH_PENDING');
      if (op.t === 'approve') return yes(m, { pending: m.pending - op.k, refunded: m.refunded + op.k });
      const afterEnd = now > m.end;
      return yes(m, {
        pending: m.pending - op.k,
        available: m.available + (afterEnd ? 0 : op.k),
        expired: m.expired + (afterEnd ? op.k : 0),
      });
    }
    case 'expire': {
      const g = issuedGuard(m);
      if (g) return g;
      if (now <= m.end) return no('VALIDITY_NOT_ENDED');
      if (m.available === 0) return no('NOT_ENOUGH_AVAILABLE');
      return yes(m, { available: 0, expired: m.expired + m.available });
    }
    case 'changeValidity': {
      if (m.phase === 'closed') return no('ORDER_CLOSED');
      const start = m.start + op.dStart;
      const end = op.malformed ? start - 1 : m.end + op.dEnd;
      if (end < start) return no('VALIDITY_MALFORMED');
      if (end < m.end || start > m.start) return no('VALIDITY_SHORTENED');
      const revive = m.phase === 'issued' && now <= end;
      return yes(m, { start, end, available: m.available + (revive ? m.expired : 0), expired: revive ? 0 : m.expired });
    }
  }
}

// ---- running the real thing ----

const EVENT: Partial<Record<Op['t'], OrderEvent>> = {
  startIssue: OrderEvent.IssueStarted,
  markIssued: OrderEvent.IssueSucceeded,
  markIssueFailed: OrderEvent.IssueFailed,
  close: OrderEvent.Closed,
  admit: OrderEvent.Consumed,
  reverse: OrderEvent.ConsumeReversed,
  refund: OrderEvent.RefundRequested,
  approve: OrderEvent.RefundApproved,
  reject: OrderEvent.RefundRejected,
  expire: OrderEvent.Expired,
  changeValidity: OrderEvent.ValidityChanged,
};

function runReal(o: OrderSnapshot, m: Model, op: Op, now: number, serial: string): OrderResult | null {
  switch (op.t) {
    case 'advance':
    case 'jump':
      return null;
    case 'startIssue':
      return O.startIssue(o);
    case 'markIssued':
      return O.markIssued(o);
    case 'markIssueFailed':
      return O.markIssueFailed(o);
    case 'close':
      return O.close(o);
    case 'admit':
      return O.admit(o, op.k, now, serial);
    case 'reverse': {
      const w = m.writeOffs.find((x) => x.serial === serial);
      return O.reverseAdmission(o, serial, (w?.count ?? 1) + op.countDelta, now);
    }
    case 'refund':
      return O.requestRefund(o, op.k, now);
    case 'approve':
      return O.approveRefund(o, op.k);
    case 'reject':
      return O.rejectRefund(o, op.k, now);
    case 'expire':
      return O.expire(o, now);
    case 'changeValidity': {
      const start = m.start + op.dStart;
      return O.changeValidity(o, { start, end: op.malformed ? start - 1 : m.end + op.dEnd }, now);
    }
  }
}

function jumpTarget(m: Model, to: 'start' | 'end' | 'refundDeadline' | 'reverseDeadline'): number {
  switch (to) {
    case 'start':
      return m.start;
    case 'end':
      return m.end;
    case 'refundDeadline':
      return m.end + 5 * DAY;
    case 'reverseDeadline':
      return (m.writeOffs.at(-1)?.at ?? 0) + 2 * HOUR;
  }
}

function serialFor(m: Model, op: Op, step: number): string {
  if (op.t === 'admit') {
    if (op.reuseSerial !== null && m.writeOffs.length > 0) return m.writeOffs[op.reuseSerial % m.writeOffs.length]!.serial;
    return `wo_${step}`;
  }
  if (op.t === 'reverse') {
    if (op.unknownSerial || m.writeOffs.length === 0) return 'wo_unknown';
    return m.writeOffs[op.pick % m.writeOffs.length]!.serial;
  }
  return '';
}

function assertMatchesModel(o: OrderSnapshot, m: Model): void {
  assert.deepEqual(
    { ...o.ledger },
    { purchased: m.purchased, available: m.available, consumed: m.consumed, refundPending: m.pending, refunded: m.refunded, expired: m.expired },
  );
  assert.equal(o.phase, m.phase);
  assert.deepEqual({ ...o.validity }, { start: m.start, end: m.end });
  assert.deepEqual(
    o.writeOffs.map((w) => ({ ...w })),
    m.writeOffs.map((w) => ({ serial: w.serial, count: w.count, admittedAt: w.at, reversedAt: w.reversedAt })),
  );
}

function assertInvariants(o: OrderSnapshot, now: number): void {
  assertLedger(o.ledger);
  assert.equal(o.state, deriveState(o.ledger, o.phase));
  if (o.phase !== 'issued') assert.equal(o.ledger.available, o.ledger.purchased, 'no unit moves before issue');
  // Expired units exist only once validity has ended.
  if (o.ledger.expired > 0) assert.ok(now > o.validity.end, 'expired units inside validity');
}

/** Checks the business rules directly on an accepted operation, independently of the model. */
function assertRulesHeld(before: OrderSnapshot, after: OrderSnapshot, op: Op, now: number, serial: string): void {
  switch (op.t) {
    case 'admit':
      assert.ok(isWithinValidity(before.validity, now), 'admitted outside validity');
      break;
    case 'reverse': {
      const w = before.writeOffs.find((x) => x.serial === serial)!;
      assert.ok(now - w.admittedAt <= REVERSE_WINDOW_MS, 'reversed after two hours');
      assert.equal(before.ledger.consumed - after.ledger.consumed, w.count, 'reversed another count');
      break;
    }
    case 'refund':
      if (after.ledger.expired < before.ledger.expired) assert.ok(canRefundExpired(before.validity, now), 'expired refund after 5 days');
      assert.ok(before.ledger.available === 0 || after.ledger.expired === before.ledger.expired || after.ledger.available === 0, 'expired taken before available');
      break;
    case 'changeValidity':
      assert.ok(after.validity.end >= before.validity.end && after.validity.start <= before.validity.start, 'validity shortened');
      break;
    default:
      break;
  }
}

describe('order aggregate, model-based', () => {
  it('agrees with the naive model and keeps every invariant over 2000 random sequences', () => {
    const accepted = new Map<string, number>();
    const reasons = new Map<string, number>();
    const states = new Set<string>();

    fc.assert(
      fc.property(scenarioArb, (sc) => {
        let now = T0;
        const validity = { start: T0 + sc.startOffset, end: T0 + sc.startOffset + sc.length };
        const created = O.newOrder(sc.purchased, validity);
        assert.ok(created.ok);
        let order = created.value;
        let model: Model = {
          phase: 'received', purchased: sc.purchased, available: sc.purchased, consumed: 0, pending: 0, refunded: 0, expired: 0,
          start: validity.start, end: validity.end, writeOffs: [],
        };
        const prefix: Op[] =
          sc.prefix === 'issued' ? [{ t: 'startIssue' }, { t: 'markIssued' }] : sc.prefix === 'issuing' ? [{ t: 'startIssue' }] : [];
        const ops = [...prefix, ...sc.ops];

        for (let step = 0; step < ops.length; step++) {
          const op = ops[step]!;
          if (op.t === 'advance') now += op.ms;
          if (op.t === 'jump') now = Math.max(now, jumpTarget(model, op.to) + op.offset);
          const serial = serialFor(model, op, step);
          const expected = expect(model, op, now, serial);
          const frozenBefore = JSON.stringify(order);
          const result = runReal(order, model, op, now, serial);

          if (result !== null) {
            if (!expected.ok) {
              assert.equal(result.ok ? 'ACCEPTED' : result.reason, expected.reason, `${op.t} at step ${step}`);
              reasons.set(expected.reason, (reasons.get(expected.reason) ?? 0) + 1);
            } else {
              assert.ok(result.ok, `${op.t} at step ${step} rejected: ${result.ok ? '' : result.reason}`);
              if (!result.ok) return;
              assertRulesHeld(order, result.value, op, now, serial);
              const allowed = ORDER_TRANSITIONS[order.state][EVENT[op.t]!] ?? [];
              assert.ok(allowed.includes(result.value.state), `${order.state} --${op.t}--> ${result.value.state}`);
              accepted.set(op.t, (accepted.get(op.t) ?? 0) + 1);
              order = result.value;
            }
          }
          // Either fully applied (model and order moved together) or rejected with nothing changed.
          if (!expected.ok) assert.equal(JSON.stringify(order), frozenBefore);
          else model = expected.model;

          assertMatchesModel(order, model);
          assertInvariants(order, now);
          assert.equal(O.refundableNow(order, now).count, modelRefundable(model, now));
          states.add(order.state);
        }
      }),
      { numRuns: 2000 },
    );

    if (process.env.DOMAIN_TEST_STATS) console.log({ accepted, reasons, states });
    // The generator must really have exercised the rules, or the test above proves little.
    for (const t of ['startIssue', 'markIssued', 'markIssueFailed', 'close', 'admit', 'reverse', 'refund', 'approve', 'reject', 'expire', 'changeValidity']) {
      assert.ok((accepted.get(t) ?? 0) >= 20, `${t} accepted only ${accepted.get(t) ?? 0} times`);
    }
    for (const r of ['NOT_YET_VALID', 'EXPIRED', 'REVERSE_WINDOW_PASSED', 'COUNT_MISMATCH', 'ALREADY_REVERSED', 'EXCEEDS_REFUNDABLE', 'VALIDITY_SHORTENED', 'VALIDITY_MALFORMED', 'NOT_ENOUGH_AVAILABLE', 'NOT_ENOUGH_PENDING', 'DUPLICATE_SERIAL', 'VALIDITY_NOT_ENDED']) {
      assert.ok((reasons.get(r) ?? 0) >= 5, `rejection ${r} seen only ${reasons.get(r) ?? 0} times`);
    }
    for (const s of ['ISSUED', 'PARTIALLY_CONSUMED', 'CONSUMED', 'REFUND_PENDING_AUDIT', 'PARTIALLY_REFUNDED', 'REFUNDED', 'EXPIRED', 'CLOSED', 'ISSUE_FAILED']) {
      assert.ok(states.has(s), `state ${s} never reached`);
    }
  });
});
