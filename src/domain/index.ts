/** The pure domain core. Ledger moves are namespaced (`ledgerOps`) so they do not clash with the order's. */
export * from './model';
export * from './result';
export * from './domain-errors';
export * from './order-state-machine';
export * from './order';
export * from './write-off-rules';
export * from './refund-amount';
export * from './resend-rules';
export * from './personal-data';
export * as ledgerOps from './ledger';
export { newLedger, assertLedger, type LedgerRejection, type LedgerResult, type UnusedBucket } from './ledger';
export {
  EXPIRED_REFUND_GRACE_MS,
  canRefundExpired,
  changeValidity as checkValidityChange,
  expiredRefundDeadline,
  hasValidityEnded,
  isWellFormedValidity,
  isWithinValidity,
  type ValidityRejection,
} from './validity-rules';
