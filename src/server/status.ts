import { Code, type CallError } from '../rpc/types';
import { StoreError, fromSystemError, type ErrorKind } from '../store/errors';

/** The one place store errors become gRPC codes, as containerd's errdefs.ToGRPC does. */
const CODES: Record<ErrorKind, Code> = {
  NotFound: Code.NOT_FOUND,
  AlreadyExists: Code.ALREADY_EXISTS,
  FailedPrecondition: Code.FAILED_PRECONDITION,
  Unavailable: Code.UNAVAILABLE,
  InvalidArgument: Code.INVALID_ARGUMENT,
  OutOfRange: Code.OUT_OF_RANGE,
  ResourceExhausted: Code.RESOURCE_EXHAUSTED,
  NotImplemented: Code.UNIMPLEMENTED,
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

export function toCallError(err: unknown): CallError {
  const mapped = fromSystemError(err);
  if (mapped instanceof StoreError) return { code: CODES[mapped.kind], details: bounded(mapped.message) };
  const message = mapped instanceof Error ? mapped.message : String(mapped);
  return { code: Code.INTERNAL, details: bounded(message) };
}

export function codeName(code: Code): string {
  return Code[code] ?? String(code);
}
