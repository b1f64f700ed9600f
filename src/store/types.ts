/**
 * The content store contract, modelled on containerd's content.Store: what the
 * gRPC adapter calls and what every implementation must honour. No protobuf
 * types appear here; timestamps are nanoseconds since the epoch.
 */

export type Labels = Record<string, string>;

/** Who is asking: containerd's namespace and lease, from request metadata. */
export interface RequestContext {
  /** '' is the global namespace used by requests that carry no namespace (containerd itself as proxy). */
  namespace: string;
  lease?: string;
}

export interface Info {
  digest: string;
  size: number;
  createdAt: bigint;
  updatedAt: bigint;
  labels: Labels;
}

export interface Status {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: bigint;
  updatedAt: bigint;
}

export interface WriterOptions {
  ref: string;
  /** Expected total size, 0 when unknown. */
  total?: number;
  /** Expected digest, '' when unknown. */
  expected?: string;
}

/** Random access to one committed blob. */
export interface BlobReader {
  readonly size: number;
  /** Reads up to length bytes at position into buffer; returns bytes read (0 at the end). */
  read(buffer: Buffer, position: number, length: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * An open ingest, locked to its holder until close(). Mirrors containerd's
 * content.Writer plus the offset rules of its Write service.
 */
export interface ContentWriter {
  readonly ref: string;
  status(): Status;
  /** Digest of the bytes written so far. */
  digest(): string;
  /**
   * Updates the expected size and digest; a digest already committed in this
   * namespace aborts the ingest and throws AlreadyExists, as containerd does.
   */
  expect(expectation: { total?: number; expected?: string }): Promise<void>;
  /**
   * Appends data at offset. offset must equal the current offset, except that
   * 0 on a partly written ingest truncates it first (containerd's rules).
   */
  write(offset: number, data: Buffer): Promise<void>;
  commit(labels?: Labels): Promise<Info>;
  /** Releases the lock; the ingest stays resumable. Idempotent. */
  close(): Promise<void>;
  /**
   * Tells the writer its client sent its last request, so that a new writer
   * on the same ref waits for this one to close instead of failing as locked.
   */
  drain(): void;
}

export interface ContentStore {
  info(ctx: RequestContext, digest: string): Info;
  /** fieldpaths: 'labels' or 'labels.KEY'; none replaces all labels. */
  update(ctx: RequestContext, info: Pick<Info, 'digest' | 'labels'>, fieldpaths: string[]): Info;
  /** filters use containerd's syntax; several filters are ORed. */
  walk(ctx: RequestContext, filters: string[]): Iterable<Info>;
  delete(ctx: RequestContext, digest: string): Promise<void>;
  readerAt(ctx: RequestContext, digest: string): Promise<BlobReader>;
  writer(ctx: RequestContext, options: WriterOptions): Promise<ContentWriter>;
  status(ctx: RequestContext, ref: string): Promise<Status>;
  listStatuses(ctx: RequestContext, filters: string[]): Promise<Status[]>;
  abort(ctx: RequestContext, ref: string): Promise<void>;
}
