/**
 * What the store reports as it works, for metrics. The store does not know
 * about Prometheus; src/server/metrics.ts implements this.
 */
export interface StoreObserver {
  bytesWritten(bytes: number): void;
  bytesRead(bytes: number): void;
  blobCommitted(size: number): void;
  blobDeleted(size: number): void;
  storageError(operation: string, error: unknown): void;
}

export const silentObserver: StoreObserver = {
  bytesWritten: () => undefined,
  bytesRead: () => undefined,
  blobCommitted: () => undefined,
  blobDeleted: () => undefined,
  storageError: () => undefined,
};
