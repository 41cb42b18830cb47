/** Typed faults thrown by the domain. Rejections a caller should expect are Results, not these. */

/** Base class so adapters can tell a domain fault from an infrastructure one. */
export abstract class DomainFault extends Error {
  abstract readonly code: string;
}

/** The quantity ledger broke its equation or went negative: a bug, never a business outcome. */
export class LedgerInvariantError extends DomainFault {
  readonly code = 'LEDGER_INVARIANT_BROKEN';
  override readonly name = 'LedgerInvariantError';
}

/** A caller passed something the domain cannot even consider (a fractional purchase count, NaN time). */
export class InvalidDomainArgumentError extends DomainFault {
  readonly code = 'INVALID_DOMAIN_ARGUMENT';
  override readonly name = 'InvalidDomainArgumentError';
}
