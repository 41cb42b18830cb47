/**
 * Faults crossing the gRPC edge. Handlers throw a GrpcFault for an expected failure (not found, bad argument);
 * anything else is a bug and leaves as INTERNAL with no detail, logged on our side.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

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
    return new GrpcFault(status.NOT_FOUND, `${what} ${JSON.stringify(id)} not found`, `${what.toUpperCase().replace(/\W+/g, '_')}_NOT_FOUND`);
  }

  static invalidArgument(field: string, problem: string): GrpcFault {
    return new GrpcFault(status.INVALID_ARGUMENT, `${field}: ${problem}`, 'INVALID_ARGUMENT', { field });
  }
}

export function toServiceError(err: unknown): { error: Partial<ServiceError>; internal: boolean } {
  if (err instanceof GrpcFault) {
    const metadata = new Metadata();
    if (err.reason) metadata.set('error-reason', err.reason);
    for (const [k, v] of Object.entries(err.details)) metadata.set(`error-${k.toLowerCase()}`, v);
    return { error: { code: err.code, details: err.message, metadata }, internal: false };
  }
  return { error: { code: status.INTERNAL, details: 'internal error' }, internal: true };
}
