import { StoreError } from './errors';

/**
 * What the store reports as it works, for metrics. The store does not know
 * about Prometheus; src/server/metrics.ts implements this.
 */
export interface StoreObserver {
  bytesWritten(bytes: number): void;
  bytesRead(bytes: number): void;
  /** A new blob was stored (not a second namespace referencing stored bytes). */
  blobCommitted(size: number): void;
  /** A blob's bytes were removed, by Delete or by garbage collection. */
  blobDeleted(size: number): void;
  /** One garbage collection pass finished, having freed bytesReclaimed bytes. */
  gcRun(bytesReclaimed: number): void;
  /** A disk or SQLite operation failed; operation names the component and method, e.g. "sqlite.insertBlob". */
  storageError(operation: string, error: unknown): void;
}

export const silentObserver: StoreObserver = {
  bytesWritten: () => undefined,
  bytesRead: () => undefined,
  blobCommitted: () => undefined,
  blobDeleted: () => undefined,
  gcRun: () => undefined,
  storageError: () => undefined,
};

/**
 * Wraps a storage component (the MetadataDB, a BlobBackend) so that every
 * failure of one of its methods is reported to observer.storageError, then
 * rethrown unchanged. Objects the methods return (open files, readers,
 * iterators) are wrapped too, since that is where disk errors such as ENOSPC
 * surface. Errors the store raises on purpose (a StoreError without a cause,
 * such as NotFound) are outcomes, not storage failures.
 */
export function observeStorage<T extends object>(target: T, component: string, observer: StoreObserver): T {
  if (observer === silentObserver) return target;
  const wrap = <V>(value: V): V =>
    typeof value === 'object' && value !== null && !isPlainData(value) ? (observeStorage(value, component, observer) as V) : value;
  return new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      const operation = `${component}.${String(property)}`;
      const fail = (error: unknown): never => {
        if (!(error instanceof StoreError) || error.cause !== undefined) observer.storageError(operation, error);
        throw error;
      };
      return (...args: unknown[]): unknown => {
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(object, args);
        } catch (error) {
          fail(error);
        }
        return result instanceof Promise ? result.then(wrap, fail) : wrap(result);
      };
    },
  });
}

/** Rows, arrays and buffers are results, not handles with methods that can fail later. */
function isPlainData(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || Array.isArray(value) || ArrayBuffer.isView(value);
}
