/**
 * Faults crossing the gRPC edge. Handlers throw a GrpcFault for an expected failure (not found, bad argument);
 * anything else is a bug and leaves as INTERNAL with no detail, logged on our side.
 *
 * A fault leaves in the standard rich error model: a `google.rpc.Status` carrying one `google.rpc.ErrorInfo`
 * (reason, domain "ticketgateway", metadata = the fault's details) in the `grpc-status-details-bin` trailer, so any
 * gRPC client library can decode it; the plain `error-reason` / `error-<key>` trailers stay for simple callers.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Status } from '../gen/google/rpc/status';
import { ErrorInfo } from '../gen/google/rpc/error_details';

/** The ErrorInfo domain of every reason the gateway sends. */
export const ERROR_DOMAIN = 'ticketgateway';
export const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

export class GrpcFault extends Error {
  constructor(
    readonly code: status,
    message: string,
    /** Machine-readable reason (UPPER_SNAKE), sent as the `error-reason` trailer. */
    readonly reason?: string,
    readonly details: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GrpcFault';
  }

  static notFound(what: string, id: string): GrpcFault {
    return new GrpcFault(status.NOT_FOUND, `${what} ${JSON.stringify(id)} not found`, `${what.toUpperCase().replace(/\W+/g, '_')}_NOT_FOUND`, {
      resourceType: what,
      resourceId: id,
    });
  }

  static invalidArgument(field: string, problem: string): GrpcFault {
    return new GrpcFault(status.INVALID_ARGUMENT, `${field}: ${problem}`, 'INVALID_ARGUMENT', { field });
  }
}

/** The `grpc-status-details-bin` value for a fault: google.rpc.Status with one ErrorInfo. */
export function statusDetailsOf(fault: GrpcFault): Buffer {
  const info = ErrorInfo.encode({ reason: fault.reason ?? status[fault.code], domain: ERROR_DOMAIN, metadata: { ...fault.details } }).finish();
  const rpcStatus = Status.encode({ code: fault.code, message: fault.message, details: [{ typeUrl: ERROR_INFO_TYPE_URL, value: Buffer.from(info) }] }).finish();
  return Buffer.from(rpcStatus);
}

/**
 * Text trailers carry printable ASCII only: grpc-js throws on anything else, and a throw while answering is an
 * unhandled rejection (the call hangs, the process may end). Values echo caller input (a device code, an order id),
 * so other characters are escaped as \uXXXX; the exact value is in the binary status details.
 */
function asciiTrailerValue(v: string): string {
  return v.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function toServiceError(err: unknown): { error: Partial<ServiceError>; internal: boolean } {
  if (err instanceof GrpcFault) {
    const metadata = new Metadata();
    if (err.reason) metadata.set('error-reason', err.reason);
    for (const [k, v] of Object.entries(err.details)) metadata.set(`error-${k.toLowerCase()}`, asciiTrailerValue(v));
    metadata.set(STATUS_DETAILS_TRAILER, statusDetailsOf(err));
    return { error: { code: err.code, details: err.message, metadata }, internal: false };
  }
  return { error: { code: status.INTERNAL, details: 'internal error' }, internal: true };
}

/** For callers: the rich status of a failed call, or undefined when the server sent none. */
export function richStatusOf(err: Pick<ServiceError, 'metadata'>): Status | undefined {
  const raw = err.metadata?.get(STATUS_DETAILS_TRAILER)[0];
  if (!raw || typeof raw === 'string') return undefined;
  return Status.decode(raw);
}

/** For callers: the ErrorInfo of a failed call (reason, domain, metadata), or undefined. */
export function errorInfoOf(err: Pick<ServiceError, 'metadata'>): ErrorInfo | undefined {
  const detail = richStatusOf(err)?.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  return detail ? ErrorInfo.decode(detail.value) : undefined;
}
