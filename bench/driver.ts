/**
 * What a row asks of the benchmark's client. Each operation runs a row's
 * whole loop inside the client and reports the seconds it took, so that a
 * client in another process (Go) costs what it costs containerd, not a round
 * trip per call. Two implementations: containerd's own content proxy client
 * in Go (go-driver.ts, the default) and grpc-js (node-driver.ts).
 */
export interface BenchDriver {
  /** Writes the synthetic blob of (size, seed) in 1 MiB writes, size and digest declared, committed with a gc.root label. */
  ingest(ref: string, size: number, seed: number): Promise<{ digest: string; seconds: number }>;
  /** Reads a blob through one ReaderAt (an Info, then one Read RPC per ReadAt) in chunk-byte calls. */
  read(digest: string, size: number, chunk: number): Promise<number>;
  /** Commits count random blobs of size bytes, refs refPrefix-<i>, concurrency at a time. */
  commitSmall(refPrefix: string, count: number, size: number, concurrency: number): Promise<{ digests: string[]; seconds: number }>;
  /** calls Info calls over digests, concurrency at a time. */
  info(digests: readonly string[], calls: number, concurrency: number): Promise<number>;
  /** Reads each blob whole through its own ReaderAt, concurrency at a time. */
  readSmall(digests: readonly string[], concurrency: number): Promise<number>;
  /** CPU seconds the client's process has used so far talking to stores (generating data and digests not counted). */
  cpuSeconds(): Promise<number>;
  close(): void;
}

export const CLIENTS = ['go', 'node'] as const;
export type ClientName = (typeof CLIENTS)[number];

/** Keeps containerd's garbage collector off what the benchmark writes. */
export const GC_ROOT_LABELS = { 'containerd.io/gc.root': 'bench' };
