import type { Hash } from 'node:crypto';
import type { IngestFile } from '../blobs/backend';
import { nowNs } from './clock';
import { formatDigest, newHash, validateDigest } from './digest';
import { alreadyExists, failedPrecondition, invalidArgument, outOfRange } from './errors';
import type { Holder } from './locks';
import type { IngestRow } from '../db/metadata';
import type { ContentWriter, Info, Labels, RequestContext, Status } from './types';
import type { Store } from './store';

/** Where an ingest's bytes stand: staged in a file, or still only "a copy of blob X". */
export interface IngestProgress {
  file?: IngestFile;
  hash: Hash;
  offset: number;
}

/**
 * One locked ingest. Operations run one at a time (the gRPC stream is
 * sequential; close() from a cancelled stream waits for the operation in
 * flight).
 */
export class IngestWriter implements ContentWriter {
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The blob published ahead of the commit once every declared byte was written (Store.publishEarly). */
  private early: { digest: string; published: Promise<void> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly ctx: RequestContext,
    private readonly row: IngestRow,
    private readonly holder: Holder,
    private progress: IngestProgress,
    /**
     * Size and digest this writer's client declared. Like containerd's Write
     * service, they belong to the stream and are checked at its commit; only
     * what was declared when the ingest began is stored with it.
     */
    private readonly expectation: { total: number; expected: string },
  ) {}

  get ref(): string {
    return this.row.ref;
  }

  /** Marks that no further requests will come, so a new writer may wait for this one to finish. */
  drain(): void {
    this.holder.draining = true;
  }

  status(): Status {
    return {
      ref: this.row.ref,
      offset: this.progress.offset,
      total: this.expectation.total || this.row.total,
      expected: this.expectation.expected || this.row.expected,
      startedAt: this.row.startedAt,
      updatedAt: this.row.updatedAt,
    };
  }

  digest(): string {
    return this.row.baseDigest ?? formatDigest(this.progress.hash);
  }

  expect(expectation: { total?: number; expected?: string }): Promise<void> {
    return this.serial(async () => {
      const { total, expected } = expectation;
      if (total !== undefined && total < 0) throw invalidArgument(`total ${total} must not be negative`);
      if (expected) {
        validateDigest(expected);
        if (this.store.db.getContent(this.ctx.namespace, expected)) {
          await this.abortLocked();
          throw alreadyExists(`blob with expected digest ${expected} exists`);
        }
        this.expectation.expected = expected;
      }
      if (total) this.expectation.total = total;
    });
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.serial(async () => {
      if (offset < 0) throw invalidArgument(`write offset ${offset} must not be negative`);
      if (offset > 0 && offset !== this.progress.offset) {
        throw outOfRange(`write @${offset} must occur at current offset ${this.progress.offset}`);
      }
      const truncating = offset === 0 && this.progress.offset > 0;
      if (!truncating && data.length === 0) return;
      // The staged file may be the early-published blob itself (a hard link): that goes before its bytes change.
      await this.withdrawEarly();
      if (truncating) await this.truncate();
      if (data.length === 0) return;
      const file = await this.materialize();
      this.store.checkBlobSize(this.progress.offset + data.length);
      // Hashed while the thread pool writes it: the two were the largest parts of an ingest, one after the other.
      // A failed write leaves the hash as it was, so it still covers exactly the bytes in the file.
      const before = this.progress.hash.copy();
      const written = file.append(data);
      this.progress.hash.update(data);
      try {
        await written;
      } catch (e) {
        this.progress.hash = before;
        throw e;
      }
      this.progress.offset += data.length;
      this.row.updatedAt = nowNs();
      this.store.observer.bytesWritten(data.length);
      if (this.progress.offset === this.expectation.total) this.publishEarly();
    });
  }

  commit(labels?: Labels): Promise<Info> {
    return this.serial(async () => {
      const size = this.progress.offset;
      const digest = this.digest();
      const { total, expected } = this.expectation;
      if (total > 0 && size !== total) throw failedPrecondition(`unexpected commit size ${size}, expected ${total}`);
      if (expected && digest !== expected) throw failedPrecondition(`unexpected commit digest ${digest}, expected ${expected}`);
      try {
        // Nothing was ever written: an empty blob still needs its (empty) staged file to publish.
        if (size === 0 && !this.row.baseDigest) await this.materialize();
        await this.progress.file?.close();
        this.progress.file = undefined;
        return await this.store.commitIngest(this.ctx, this.row, digest, size, labels ?? {});
      } catch (e) {
        await this.withdrawEarly();
        throw e;
      } finally {
        this.finish();
      }
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      // Whatever fails here (SQLite on a full disk, say), the ref must not stay locked.
      try {
        await this.withdrawEarly();
        await this.progress.file?.close();
        this.progress.file = undefined;
        this.store.db.updateIngest(this.row);
        this.store.rememberProgress(this.row.id, this.progress);
      } finally {
        this.finish();
      }
    }, true);
  }

  /** Runs fn after the operation in flight; a closed writer refuses new work. */
  private serial<T>(fn: () => Promise<T>, evenIfClosed = false): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed && !evenIfClosed) throw failedPrecondition(`writer for ref ${this.row.ref} is closed`);
      return fn();
    };
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private finish(): void {
    this.closed = true;
    this.holder.release();
  }

  private publishEarly(): void {
    const digest = this.digest();
    const { expected } = this.expectation;
    if (expected && expected !== digest) return;
    // A failure here is the commit's to meet again and report.
    this.early = { digest, published: this.store.publishEarly(this.row, digest).catch(() => undefined) };
  }

  private async withdrawEarly(): Promise<void> {
    const early = this.early;
    if (!early) return;
    this.early = undefined;
    await early.published;
    await this.store.withdrawEarly(this.row, early.digest);
  }

  private async abortLocked(): Promise<void> {
    await this.withdrawEarly();
    await this.progress.file?.close();
    this.progress.file = undefined;
    this.store.leases.releaseIngest(this.ctx, this.row.ref);
    await this.store.removeIngest(this.ctx.namespace, this.row);
    this.finish();
  }

  private async truncate(): Promise<void> {
    if (this.row.baseDigest) {
      this.row.baseDigest = null;
      this.store.db.updateIngest(this.row);
    }
    const file = await this.materialize();
    await file.truncate();
    this.progress.hash = newHash();
    this.progress.offset = 0;
    this.row.updatedAt = nowNs();
  }

  /** Gives the ingest a staged file, copying the shared base blob into it first if needed. */
  private async materialize(): Promise<IngestFile> {
    if (this.progress.file) return this.progress.file;
    if (this.row.baseDigest) {
      this.progress = await this.store.stageBaseBlob(this.row);
      this.row.baseDigest = null;
      this.store.db.updateIngest(this.row);
      return this.progress.file!;
    }
    this.progress.file = await this.store.backend.openIngest(this.row.id);
    return this.progress.file;
  }
}
