import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as L from '../../src/domain/ledger';
import { ORDER_STATES, OrderState, type Ledger } from '../../src/domain/model';
import {
  IllegalTransitionError,
  ORDER_EVENTS,
  ORDER_TRANSITIONS,
  OrderEvent,
  deriveState,
  isFinalState,
  transition,
} from '../../src/domain/order-state-machine';

const S = OrderState;
const E = OrderEvent;

function ledger(p: Partial<Ledger> & { purchased: number }): Ledger {
  return { available: 0, consumed: 0, refundPending: 0, refunded: 0, expired: 0, ...p };
}

/** Every ledger with 1..4 purchased units. */
function allSmallLedgers(): Ledger[] {
  const out: Ledger[] = [];
  for (let p = 1; p <= 4; p++)
    for (let a = 0; a <= p; a++)
      for (let c = 0; a + c <= p; c++)
        for (let rp = 0; a + c + rp <= p; rp++)
          for (let r = 0; a + c + rp + r <= p; r++)
            out.push(ledger({ purchased: p, available: a, consumed: c, refundPending: rp, refunded: r, expired: p - a - c - rp - r }));
  return out;
}

/** Every ledger move each post-issue event can stand for, with every count. */
function movesFor(l: Ledger): Array<[OrderEvent, Ledger]> {
  const out: Array<[OrderEvent, Ledger]> = [];
  const add = (e: OrderEvent, r: L.LedgerResult) => {
    if (r.ok) out.push([e, r.value]);
  };
  for (let k = 1; k <= l.purchased; k++) {
    add(E.Consumed, L.consume(l, k));
    add(E.ConsumeReversed, L.reverseConsume(l, k, 'available'));
    add(E.ConsumeReversed, L.reverseConsume(l, k, 'expired'));
    add(E.RefundApproved, L.approveRefund(l, k));
    add(E.RefundRejected, L.rejectRefund(l, k, 'available'));
    add(E.RefundRejected, L.rejectRefund(l, k, 'expired'));
    add(E.ValidityChanged, L.restoreExpired(l, k));
    for (let fromAvailable = 0; fromAvailable <= k; fromAvailable++) {
      let r: L.LedgerResult = { ok: true, value: l };
      if (fromAvailable > 0) r = L.requestRefund(l, fromAvailable, 'available');
      if (r.ok && k - fromAvailable > 0) r = L.requestRefund(r.value, k - fromAvailable, 'expired');
      add(E.RefundRequested, r);
    }
  }
  add(E.Expired, L.expireAvailable(l));
  add(E.ValidityChanged, { ok: true, value: l });
  return out;
}

describe('deriveState', () => {
  const cases: Array<[Partial<Ledger> & { purchased: number }, OrderState]> = [
    [{ purchased: 2, available: 2 }, S.Issued],
    [{ purchased: 2, available: 1, expired: 1 }, S.Issued],
    [{ purchased: 2, available: 1, consumed: 1 }, S.PartiallyConsumed],
    [{ purchased: 3, available: 1, consumed: 1, refunded: 1 }, S.PartiallyConsumed],
    [{ purchased: 2, available: 1, refunded: 1 }, S.PartiallyRefunded],
    [{ purchased: 3, available: 1, refundPending: 1, consumed: 1 }, S.RefundPendingAudit],
    [{ purchased: 1, refundPending: 1 }, S.RefundPendingAudit],
    [{ purchased: 2, consumed: 2 }, S.Consumed],
    [{ purchased: 2, refunded: 2 }, S.Refunded],
    [{ purchased: 2, expired: 2 }, S.Expired],
    [{ purchased: 3, expired: 1, consumed: 1, refunded: 1 }, S.Expired],
    [{ purchased: 2, consumed: 1, refunded: 1 }, S.Closed],
  ];
  for (const [l, state] of cases) {
    it(`${JSON.stringify(l)} -> ${state}`, () => assert.equal(deriveState(ledger(l), 'issued'), state));
  }

  it('before issue, the phase alone decides', () => {
    const l = L.newLedger(2);
    assert.equal(deriveState(l, 'received'), S.Received);
    assert.equal(deriveState(l, 'issuing'), S.Issuing);
    assert.equal(deriveState(l, 'issue-failed'), S.IssueFailed);
    assert.equal(deriveState(l, 'closed'), S.Closed);
  });
});

describe('ORDER_TRANSITIONS', () => {
  it('has a row for every state and only known states as targets', () => {
    assert.deepEqual(Object.keys(ORDER_TRANSITIONS).sort(), [...ORDER_STATES].sort());
    for (const row of Object.values(ORDER_TRANSITIONS)) {
      for (const targets of Object.values(row)) {
        assert.ok(targets!.length > 0);
        for (const t of targets!) assert.ok(ORDER_STATES.includes(t), t);
      }
    }
  });

  it('after issue, holds exactly what the ledger can produce: nothing missing, nothing dead', () => {
    const reachable = new Map<string, Set<OrderState>>();
    for (const l of allSmallLedgers()) {
      const from = deriveState(l, 'issued');
      for (const [event, after] of movesFor(l)) {
        const key = `${from}|${event}`;
        if (!reachable.has(key)) reachable.set(key, new Set());
        reachable.get(key)!.add(deriveState(after, 'issued'));
        // And the state machine agrees on every one of them.
        assert.equal(transition(from, event, after), deriveState(after, 'issued'));
      }
    }
    const preIssue = new Set<OrderState>([S.Received, S.Issuing, S.IssueFailed]);
    const preIssueEvents = new Set<OrderEvent>([E.IssueStarted, E.IssueSucceeded, E.IssueFailed, E.Closed]);
    for (const from of ORDER_STATES) {
      if (preIssue.has(from)) continue;
      for (const event of ORDER_EVENTS) {
        if (preIssueEvents.has(event)) {
          assert.equal(ORDER_TRANSITIONS[from][event], undefined, `${from} + ${event} must not be allowed`);
          continue;
        }
        const table = [...(ORDER_TRANSITIONS[from][event] ?? [])].sort();
        const seen = [...(reachable.get(`${from}|${event}`) ?? [])].sort();
        assert.deepEqual(table, seen, `${from} + ${event}`);
      }
    }
  });

  it('walks the issue lifecycle', () => {
    const l = L.newLedger(2);
    assert.equal(transition(S.Received, E.IssueStarted, l), S.Issuing);
    assert.equal(transition(S.Issuing, E.IssueSucceeded, l), S.Issued);
    assert.equal(transition(S.Issuing, E.IssueFailed, l), S.IssueFailed);
    assert.equal(transition(S.IssueFailed, E.IssueStarted, l), S.Issuing);
    assert.equal(transition(S.IssueFailed, E.Closed, l), S.Closed);
    assert.equal(transition(S.Received, E.Closed, l), S.Closed);
    assert.equal(transition(S.Issuing, E.ValidityChanged, l), S.Issuing);
  });
});

describe('transition', () => {
  it('throws IllegalTransitionError, carrying from and event, for every pair the table leaves out', () => {
    // Any ledger will do: the pair itself is refused before the ledger is looked at.
    const ledgers = [L.newLedger(2), ledger({ purchased: 2, consumed: 2 }), ledger({ purchased: 2, refundPending: 1, available: 1 })];
    let illegal = 0;
    for (const from of ORDER_STATES) {
      for (const event of ORDER_EVENTS) {
        if (ORDER_TRANSITIONS[from][event] !== undefined) continue;
        illegal++;
        for (const l of ledgers) {
          assert.throws(
            () => transition(from, event, l),
            (err: unknown) =>
              err instanceof IllegalTransitionError && err.from === from && err.event === event && err.derived === undefined,
            `${from} + ${event}`,
          );
        }
      }
    }
    assert.ok(illegal > 50, `expected many illegal pairs, got ${illegal}`);
  });

  it('throws when an allowed event would land in a state the table does not list', () => {
    // ISSUED + CONSUMED can never produce REFUNDED.
    assert.throws(
      () => transition(S.Issued, E.Consumed, ledger({ purchased: 1, refunded: 1 })),
      (err: unknown) => err instanceof IllegalTransitionError && err.derived === S.Refunded,
    );
    // A refund request always leaves something pending.
    assert.throws(() => transition(S.Issued, E.RefundRequested, L.newLedger(1)), IllegalTransitionError);
  });

  it('takes the target from the ledger after the event', () => {
    assert.equal(transition(S.Issued, E.Consumed, ledger({ purchased: 2, available: 1, consumed: 1 })), S.PartiallyConsumed);
    assert.equal(transition(S.Issued, E.Consumed, ledger({ purchased: 2, consumed: 2 })), S.Consumed);
    assert.equal(transition(S.RefundPendingAudit, E.RefundApproved, ledger({ purchased: 2, refunded: 2 })), S.Refunded);
    assert.equal(transition(S.RefundPendingAudit, E.RefundApproved, ledger({ purchased: 2, consumed: 1, refunded: 1 })), S.Closed);
    assert.equal(transition(S.Expired, E.ValidityChanged, L.newLedger(2)), S.Issued);
  });
});

describe('isFinalState', () => {
  it('is true exactly for settled states', () => {
    const finals = ORDER_STATES.filter(isFinalState).sort();
    assert.deepEqual(finals, [S.Closed, S.Consumed, S.Refunded].sort());
  });

  it('final states accept nothing but a write-off reversal or a (no-op) validity change', () => {
    for (const s of ORDER_STATES.filter(isFinalState)) {
      for (const e of Object.keys(ORDER_TRANSITIONS[s]) as OrderEvent[]) {
        assert.ok([E.ConsumeReversed, E.ValidityChanged, E.Closed].includes(e), `${s} + ${e}`);
      }
    }
  });
});
