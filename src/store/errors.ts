/**
 * Typed store errors. Each kind corresponds to one of containerd's errdefs
 * classes; the gRPC layer maps them to status codes in one place
 * (src/server/status.ts) so clients get back the errors containerd would give.
 */
export type ErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'InvalidArgument'
  | 'OutOfRange'
  | 'ResourceExhausted'
  | 'NotImplemented';

export class StoreError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = `StoreError(${kind})`;
  }
}

export const notFound = (message: string): StoreError => new StoreError('NotFound', message);
export const alreadyExists = (message: string): StoreError => new StoreError('AlreadyExists', message);
export const failedPrecondition = (message: string): StoreError => new StoreError('FailedPrecondition', message);
export const unavailable = (message: string): StoreError => new StoreError('Unavailable', message);
export const invalidArgument = (message: string): StoreError => new StoreError('InvalidArgument', message);
export const outOfRange = (message: string): StoreError => new StoreError('OutOfRange', message);
export const resourceExhausted = (message: string): StoreError => new StoreError('ResourceExhausted', message);
export const notImplemented = (message: string): StoreError => new StoreError('NotImplemented', message);

/**
 * Exhausted resources (disk full, as the filesystem or SQLite reports it, or
 * no file descriptors left) become ResourceExhausted so clients can tell them
 * from bugs and retry later.
 */
export function fromSystemError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return new StoreError('ResourceExhausted', `no space left on the content store: ${(err as Error).message}`, { cause: err });
  }
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new StoreError('ResourceExhausted', `too many open files: ${(err as Error).message}`, { cause: err });
  }
  return err;
}
