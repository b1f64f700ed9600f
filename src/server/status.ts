import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { StoreError, fromSystemError, type ErrorKind } from '../store/errors';

/** The one place store errors become gRPC codes, as containerd's errdefs.ToGRPC does. */
const CODES: Record<ErrorKind, status> = {
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unavailable: status.UNAVAILABLE,
  InvalidArgument: status.INVALID_ARGUMENT,
  OutOfRange: status.OUT_OF_RANGE,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  NotImplemented: status.UNIMPLEMENTED,
};

/**
 * Messages echo client input (a ref, a filter) and travel in an HTTP/2
 * trailer: one over the client's header limit (a 100 KiB ref) leaves the call
 * without a status forever, so details are capped.
 */
const MAX_DETAILS = 2048;

function bounded(message: string): string {
  return message.length > MAX_DETAILS ? `${message.slice(0, MAX_DETAILS)}… (${message.length - MAX_DETAILS} more characters)` : message;
}

export function toServiceError(err: unknown): Partial<ServiceError> & { code: status; details: string } {
  const mapped = fromSystemError(err);
  if (mapped instanceof StoreError) {
    return { code: CODES[mapped.kind], details: bounded(mapped.message), metadata: new Metadata() };
  }
  const message = mapped instanceof Error ? mapped.message : String(mapped);
  return { code: status.INTERNAL, details: bounded(message), metadata: new Metadata() };
}

export function codeName(code: status): string {
  return status[code] ?? String(code);
}
