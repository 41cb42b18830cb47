/**
 * Our order state machine. Events are what happened; the state after an event is not chosen by the
 * caller but derived from the ledger after it (`deriveState`), then checked against an explicit table
 * of what each event may lead to from each state (`ORDER_TRANSITIONS`). Anything outside the table is a
 * bug upstream and throws `IllegalTransitionError`.
 *
 * Derivation rules, in order (phase `issued`, i.e. codes have been handed to Taobao):
 *   1. refundPending > 0                                   -> REFUND_PENDING_AUDIT (a supplier audit is open)
 *   2. available > 0 and consumed > 0                      -> PARTIALLY_CONSUMED
 *      available > 0 and refunded > 0 (nothing consumed)   -> PARTIALLY_REFUNDED
 *      available > 0 otherwise                             -> ISSUED
 *      (expired units next to available ones - a refund rejected after validity ended but before the
 *       expiry sweep - do not change the state: the sweep will.)
 *   3. nothing available, nothing pending:
 *      consumed = purchased                                -> CONSUMED
 *      refunded = purchased                                -> REFUNDED
 *      expired > 0                                         -> EXPIRED (still refundable for 5 days, or revived
 *                                                             by a validity extension, whatever the mix)
 *      otherwise (consumed + refunded only)                -> CLOSED
 * Before issue the phase alone decides: RECEIVED, ISSUING, ISSUE_FAILED, or CLOSED when an order that
 * was never issued is abandoned (Taobao refunded it / we called failsend).
 */
import type { Ledger } from './model';
import { OrderState } from './model';
import { DomainFault } from './domain-errors';

export enum OrderEvent {
  IssueStarted = 'ISSUE_STARTED',
  IssueSucceeded = 'ISSUE_SUCCEEDED',
  IssueFailed = 'ISSUE_FAILED',
  Consumed = 'CONSUMED',
  ConsumeReversed = 'CONSUME_REVERSED',
  RefundRequested = 'REFUND_REQUESTED',
  RefundApproved = 'REFUND_APPROVED',
  RefundRejected = 'REFUND_REJECTED',
  Expired = 'EXPIRED',
  ValidityChanged = 'VALIDITY_CHANGED',
  Closed = 'CLOSED',
}

export const ORDER_EVENTS: readonly OrderEvent[] = Object.values(OrderEvent);

/** Where an order is in getting its codes; only `issued` orders have a meaningful ledger. */
export type OrderPhase = 'received' | 'issuing' | 'issue-failed' | 'issued' | 'closed';

export class IllegalTransitionError extends DomainFault {
  readonly code = 'ILLEGAL_TRANSITION';
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly from: OrderState,
    readonly event: OrderEvent,
    /** The state the ledger would have put the order in, when the event itself is allowed from `from`. */
    readonly derived?: OrderState,
  ) {
    super(
      derived === undefined
        ? `event ${event} is not allowed in state ${from}`
        : `event ${event} from ${from} would lead to ${derived}, which the transition table forbids`,
    );
  }
}

const S = OrderState;
const E = OrderEvent;

/** The three states in which some units are still usable at the gate. */
const USABLE = [S.Issued, S.PartiallyConsumed, S.PartiallyRefunded] as const;

/**
 * From state + event -> the states the ledger may put the order in. Kept exactly to what the ledger
 * can produce (test/domain/order-state-machine.test.ts enumerates every small ledger to prove it).
 */
export const ORDER_TRANSITIONS: Readonly<Record<OrderState, Partial<Record<OrderEvent, readonly OrderState[]>>>> = {
  [S.Received]: {
    [E.IssueStarted]: [S.Issuing],
    [E.ValidityChanged]: [S.Received],
    [E.Closed]: [S.Closed],
  },
  [S.Issuing]: {
    [E.IssueSucceeded]: [S.Issued],
    [E.IssueFailed]: [S.IssueFailed],
    [E.ValidityChanged]: [S.Issuing],
  },
  [S.IssueFailed]: {
    // An operator may replay the issue once the supplier is fixed.
    [E.IssueStarted]: [S.Issuing],
    [E.ValidityChanged]: [S.IssueFailed],
    [E.Closed]: [S.Closed],
  },
  [S.Issued]: {
    // EXPIRED when expired units were already waiting beside the last available ones (before the sweep).
    [E.Consumed]: [S.PartiallyConsumed, S.Consumed, S.Expired],
    [E.RefundRequested]: [S.RefundPendingAudit],
    [E.Expired]: [S.Expired],
    [E.ValidityChanged]: [S.Issued],
  },
  [S.PartiallyConsumed]: {
    [E.Consumed]: [S.PartiallyConsumed, S.Consumed, S.Closed, S.Expired],
    [E.ConsumeReversed]: USABLE,
    [E.RefundRequested]: [S.RefundPendingAudit],
    [E.Expired]: [S.Expired],
    [E.ValidityChanged]: [S.PartiallyConsumed],
  },
  [S.PartiallyRefunded]: {
    [E.Consumed]: [S.PartiallyConsumed, S.Closed, S.Expired],
    [E.RefundRequested]: [S.RefundPendingAudit],
    [E.Expired]: [S.Expired],
    [E.ValidityChanged]: [S.PartiallyRefunded],
  },
  [S.RefundPendingAudit]: {
    // Gates keep admitting the units not under audit; the sweep expires them; more refunds may queue.
    [E.Consumed]: [S.RefundPendingAudit],
    [E.ConsumeReversed]: [S.RefundPendingAudit],
    [E.RefundRequested]: [S.RefundPendingAudit],
    // Approval always leaves something refunded, so never plain ISSUED.
    [E.RefundApproved]: [S.PartiallyConsumed, S.PartiallyRefunded, S.RefundPendingAudit, S.Refunded, S.Expired, S.Closed],
    [E.RefundRejected]: [...USABLE, S.RefundPendingAudit, S.Expired],
    [E.Expired]: [S.RefundPendingAudit],
    [E.ValidityChanged]: [S.RefundPendingAudit],
  },
  [S.Consumed]: {
    // Reversed inside the 2-hour window; to EXPIRED when validity ended meanwhile.
    [E.ConsumeReversed]: [S.Issued, S.PartiallyConsumed, S.Expired],
    [E.ValidityChanged]: [S.Consumed],
  },
  [S.Expired]: {
    // Expired units go back into use only through a validity extension, or arrive here from a reversal.
    [E.ConsumeReversed]: [...USABLE, S.Expired],
    [E.RefundRequested]: [S.RefundPendingAudit],
    [E.ValidityChanged]: [...USABLE, S.Expired],
  },
  [S.Refunded]: {
    [E.ValidityChanged]: [S.Refunded],
  },
  [S.Closed]: {
    // A CLOSED mix of consumed + refunded units reopens only through a write-off reversal. An order
    // closed before issue accepts nothing: order.ts rejects it (ORDER_CLOSED) before asking this table.
    [E.ConsumeReversed]: [S.PartiallyConsumed, S.PartiallyRefunded, S.Expired],
    [E.ValidityChanged]: [S.Closed],
  },
};

const PRE_ISSUE: Partial<Record<OrderState, OrderPhase>> = {
  [S.Received]: 'received',
  [S.Issuing]: 'issuing',
  [S.IssueFailed]: 'issue-failed',
};

/** The state an order is in, given its ledger and where it is in getting its codes. */
export function deriveState(ledger: Ledger, phase: OrderPhase): OrderState {
  switch (phase) {
    case 'received':
      return S.Received;
    case 'issuing':
      return S.Issuing;
    case 'issue-failed':
      return S.IssueFailed;
    case 'closed':
      return S.Closed;
    case 'issued':
      break;
  }
  if (ledger.refundPending > 0) return S.RefundPendingAudit;
  if (ledger.available > 0) {
    if (ledger.consumed > 0) return S.PartiallyConsumed;
    if (ledger.refunded > 0) return S.PartiallyRefunded;
    return S.Issued;
  }
  if (ledger.consumed === ledger.purchased) return S.Consumed;
  if (ledger.refunded === ledger.purchased) return S.Refunded;
  if (ledger.expired > 0) return S.Expired;
  return S.Closed;
}

/** The phase an order is in after `event` in state `from` (a validity change keeps a pre-issue phase). */
export function phaseAfter(from: OrderState, event: OrderEvent): OrderPhase {
  switch (event) {
    case E.IssueStarted:
      return 'issuing';
    case E.IssueFailed:
      return 'issue-failed';
    case E.Closed:
      return 'closed';
    case E.ValidityChanged:
      return PRE_ISSUE[from] ?? 'issued';
    default:
      return 'issued';
  }
}

/** The events the table allows from a state. */
export function allowedEvents(from: OrderState): OrderEvent[] {
  return ORDER_EVENTS.filter((e) => ORDER_TRANSITIONS[from][e] !== undefined);
}

/** The state after `event`, derived from the ledger after it; throws if the table does not allow it. */
export function transition(from: OrderState, event: OrderEvent, ledgerAfter: Ledger): OrderState {
  const targets = ORDER_TRANSITIONS[from][event];
  if (targets === undefined) throw new IllegalTransitionError(from, event);
  const derived = deriveState(ledgerAfter, phaseAfter(from, event));
  if (!targets.includes(derived)) throw new IllegalTransitionError(from, event, derived);
  return derived;
}

/**
 * Settled: nothing usable, nothing awaiting a supplier's audit, nothing refundable. Only a write-off
 * reversal inside its 2-hour window can still reopen CONSUMED or CLOSED; EXPIRED is not final because
 * expired units stay refundable for five days and a validity extension revives them.
 */
export function isFinalState(state: OrderState): boolean {
  return state === S.Consumed || state === S.Refunded || state === S.Closed;
}
