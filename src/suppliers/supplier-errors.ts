/** Typed faults of the supplier layer. Messages never carry mobile or ID-card numbers. */

export abstract class SupplierError extends Error {
  abstract readonly errorCode: string;
  protected constructor(
    readonly supplier: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(maskPersonalData(message), options);
    this.name = new.target.name;
  }
}

/** The adapter declared it cannot do this; nothing was sent. */
export class CapabilityNotSupportedError extends SupplierError {
  readonly errorCode = 'CAPABILITY_NOT_SUPPORTED';
  constructor(
    supplier: string,
    readonly capability: string,
  ) {
    super(supplier, `${supplier} does not support ${capability}`);
  }
}

export type SupplierCallFailure =
  /** Connection refused/reset, DNS, socket errors. */
  | 'network'
  /** The caller's deadline (or the adapter's own timeout) fired; the request was aborted. */
  | 'timeout'
  /** Non-2xx HTTP status. */
  | 'http_status'
  /** A reply we cannot trust: unparsable, unsigned, missing fields. Never taken as success. */
  | 'malformed_reply'
  /** The supplier answered with an error code that is not a business refusal (e.g. unknown batch). */
  | 'supplier_error';

/**
 * A call whose outcome we do not know or could not use.
 * `retryable`: trying again later may help (5xx, network, timeout, malformed reply).
 * `ambiguous`: the supplier may have acted on the request (so retry with the same idempotency key).
 */
export class SupplierCallError extends SupplierError {
  readonly errorCode = 'SUPPLIER_CALL_FAILED';
  readonly retryable: boolean;
  readonly ambiguous: boolean;
  readonly failure: SupplierCallFailure;
  readonly operation: string;
  readonly httpStatus?: number;
  readonly supplierCode?: string;

  constructor(
    supplier: string,
    init: {
      operation: string;
      failure: SupplierCallFailure;
      retryable: boolean;
      ambiguous: boolean;
      message: string;
      httpStatus?: number;
      supplierCode?: string;
      cause?: unknown;
    },
  ) {
    super(supplier, `${supplier} ${init.operation}: ${init.message}`, { cause: init.cause });
    this.operation = init.operation;
    this.failure = init.failure;
    this.retryable = init.retryable;
    this.ambiguous = init.ambiguous;
    this.httpStatus = init.httpStatus;
    this.supplierCode = init.supplierCode;
  }
}

/** A supplier state code our (configurable) mapping does not know: an operator exception, never a guess. */
export class UnknownSupplierStateError extends SupplierError {
  readonly errorCode = 'UNKNOWN_SUPPLIER_STATE';
  constructor(
    supplier: string,
    readonly field: string,
    readonly value: string,
    readonly context: string,
  ) {
    super(supplier, `${supplier} ${context}: unknown ${field} '${value}' (add it to the instance's status mapping)`);
  }
}

/** The instance configuration is invalid. */
export class SupplierConfigError extends SupplierError {
  readonly errorCode = 'SUPPLIER_CONFIG_INVALID';
  constructor(supplier: string, message: string) {
    super(supplier, message);
  }
}

const MAINLAND_MOBILE = /(?<!\d)1[3-9]\d{9}(?!\d)/g;
const ID_CARD = /(?<![\dA-Za-z])(\d{17}[\dXx]|\d{15})(?![\dA-Za-z])/g;

/** Masks mobile and ID-card numbers in free text (supplier descriptions may echo them). */
export function maskPersonalData(text: string): string {
  return text
    .replace(ID_CARD, (m) => `${m.slice(0, 3)}${'*'.repeat(m.length - 7)}${m.slice(-4)}`)
    .replace(MAINLAND_MOBILE, (m) => `${m.slice(0, 3)}****${m.slice(-4)}`);
}
