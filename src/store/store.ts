import { randomUUID } from 'node:crypto';
import type { BlobBackend } from '../blobs/backend';
import { LeaseDB } from '../db/leases';
import type { IngestRow, MetadataDB } from '../db/metadata';
import { nowNs } from './clock';
import { newHash, validateDigest } from './digest';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, resourceExhausted } from './errors';
import { infoAdaptor, parseFilters, statusAdaptor } from './filters';
import { LeaseManager } from './leases';
import { KeyedMutex, RefLocks } from './locks';
import { silentObserver, type StoreObserver } from './observer';
import type { BlobReader, ContentStore, ContentWriter, Info, Labels, RequestContext, Status, WriterOptions } from './types';
import { IngestWriter, type IngestProgress } from './writer';

export type NamespacePolicy = 'shared' | 'isolated';

export interface StoreOptions {
  /** containerd's content sharing policy between namespaces. */
  namespacePolicy?: NamespacePolicy;
  /** Largest blob accepted, in bytes; 0 for no limit. */
  maxBlobSize?: number;
  /** Most ingests locked by writers at once; 0 for no limit. */
  maxActiveIngests?: number;
  observer?: StoreObserver;
}

/** containerd's label limit: key and value together. */
const MAX_LABEL_SIZE = 4096;
/** Hash states kept for closed ingests so that a resumed writer needn't re-read its bytes. */
const PROGRESS_CACHE_SIZE = 1024;

/**
 * The content store: bytes in a BlobBackend, everything else in SQLite.
 * Namespaces follow containerd's metadata store: each namespace sees its own
 * rows, and the bytes of one digest are stored once.
 */
export class Store implements ContentStore {
  readonly observer: StoreObserver;
  readonly leases: LeaseManager;
  /** Called after each namespaced Delete, so the collector (src/store/gc.ts) can run after a threshold. */
  onDeletion: () => void = () => undefined;
  private readonly locks = new RefLocks();
  private readonly digestMutex = new KeyedMutex();
  private readonly progressCache = new Map<string, { hash: IngestProgress['hash']; offset: number }>();
  private readonly policy: NamespacePolicy;
  private readonly liveWriters = new Map<string, IngestWriter>();
  /** Blobs published ahead of their commit (see publishEarly), each by the id of the ingest that did it. */
  private readonly earlyPublished = new Map<string, string>();

  constructor(
    readonly db: MetadataDB,
    readonly backend: BlobBackend,
    private readonly options: StoreOptions = {},
  ) {
    this.observer = options.observer ?? silentObserver;
    this.policy = options.namespacePolicy ?? 'shared';
    this.leases = new LeaseManager(new LeaseDB(db.db), db);
  }

  get activeIngests(): number {
    return this.locks.size;
  }

  /** Closes every open writer (their ingests stay resumable); used at shutdown. */
  async closeWriters(): Promise<void> {
    await Promise.all([...this.liveWriters.values()].map((writer) => writer.close()));
  }

  info(ctx: RequestContext, digest: string): Info {
    validateDigest(digest);
    const info = this.db.getContent(ctx.namespace, digest);
    if (!info) throw notFound(`content ${digest}: not found`);
    return info;
  }

  update(ctx: RequestContext, info: Pick<Info, 'digest' | 'labels'>, fieldpaths: string[]): Info {
    validateDigest(info.digest);
    return this.db.transaction(() => {
      const current = this.info(ctx, info.digest);
      let labels: Labels;
      if (fieldpaths.length === 0) {
        labels = { ...info.labels };
      } else {
        labels = { ...current.labels };
        for (const path of fieldpaths) {
          if (path === 'labels') {
            labels = { ...info.labels };
          } else if (path.startsWith('labels.')) {
            const key = path.slice('labels.'.length);
            const value = info.labels[key];
            if (value) labels[key] = value;
            else delete labels[key];
          } else {
            throw invalidArgument(`cannot update ${JSON.stringify(path)} field on content info ${JSON.stringify(info.digest)}`);
          }
        }
      }
      validateLabels(labels);
      const at = nowNs();
      this.db.setLabels(ctx.namespace, info.digest, labels, at);
      return { ...current, labels, updatedAt: at };
    });
  }

  *walk(ctx: RequestContext, filters: string[]): Iterable<Info> {
    const filter = parseFilters(filters);
    for (const info of this.db.listContent(ctx.namespace)) {
      if (filter.match(infoAdaptor(info))) yield info;
    }
  }

  async delete(ctx: RequestContext, digest: string): Promise<void> {
    validateDigest(digest);
    if (ctx.namespace) {
      // As containerd's metadata store: a namespace's Delete removes its row;
      // the collector removes the bytes once no namespace references them.
      this.db.transaction(() => {
        if (!this.db.getContent(ctx.namespace, digest)) throw notFound(`content ${digest}: not found`);
        this.db.deleteContent(ctx.namespace, digest);
        this.leases.releaseContent(ctx, digest);
      });
      this.onDeletion();
      return;
    }
    // The global namespace behaves like containerd's local store: Delete removes the bytes at once.
    await this.digestMutex.run(digest, async () => {
      const blob = this.db.getBlob(digest);
      const remaining = this.db.transaction(() => {
        if (!this.db.getContent(ctx.namespace, digest)) throw notFound(`content ${digest}: not found`);
        const left = this.db.deleteContent(ctx.namespace, digest);
        if (left === 0) this.db.deleteBlob(digest);
        return left;
      });
      // Row first, file second: a crash in between leaves an orphan file for
      // start-up reconciliation, never a row without its bytes.
      if (remaining === 0) {
        await this.backend.deleteBlob(digest);
        if (blob) this.observer.blobDeleted(blob.size);
      }
    });
  }

  async readerAt(ctx: RequestContext, digest: string): Promise<BlobReader> {
    this.info(ctx, digest);
    const reader = await this.backend.openBlob(digest);
    const observer = this.observer;
    return {
      size: reader.size,
      async read(buffer, position, length) {
        const n = await reader.read(buffer, position, length);
        observer.bytesRead(n);
        return n;
      },
      close: () => reader.close(),
    };
  }

  async writer(ctx: RequestContext, options: WriterOptions): Promise<ContentWriter> {
    const { ref } = options;
    const total = options.total ?? 0;
    const expected = options.expected ?? '';
    if (!ref) throw invalidArgument('ref must not be empty');
    if (total < 0) throw invalidArgument(`total ${total} must not be negative`);
    if (expected) validateDigest(expected);
    this.checkBlobSize(total);
    const max = this.options.maxActiveIngests ?? 0;
    if (max > 0 && this.locks.size >= max) throw resourceExhausted(`too many ingests in progress (limit ${max})`);

    const holder = await this.locks.acquire(lockKey(ctx.namespace, ref), ref);
    try {
      if (expected && this.db.getContent(ctx.namespace, expected)) {
        this.leases.holdContent(ctx, expected);
        throw alreadyExists(`content ${expected}: already exists`);
      }
      let row = this.db.getIngest(ctx.namespace, ref);
      if (row && total > 0 && row.total > 0 && row.total !== total) {
        // containerd discards an ingest whose declared size changed.
        await this.removeIngest(ctx.namespace, row);
        row = undefined;
      }
      const progress = row ? await this.resumeProgress(row) : undefined;
      const isNew = row === undefined;
      if (!row) {
        const now = nowNs();
        // containerd shares only when the declared size (if any) matches the stored blob.
        const stored = expected && this.policy === 'shared' ? this.db.getBlob(expected) : undefined;
        const base = stored && (total === 0 || total === stored.size) ? stored : undefined;
        row = {
          namespace: ctx.namespace,
          ref,
          id: randomUUID(),
          total: base ? base.size : total,
          expected,
          baseDigest: base ? base.digest : null,
          startedAt: now,
          updatedAt: now,
        };
      }
      // Ingest rows need no flush (a crash may lose an ingest, as in containerd), and every Write stream begins here.
      const current = row;
      this.db.lazyTransaction(() => {
        if (isNew) this.db.insertIngest(current);
        this.leases.holdIngest(ctx, ref);
      });
      const writer = new IngestWriter(this, ctx, row, holder, progress ?? { hash: newHash(), offset: this.baseOffset(row) }, { total, expected });
      this.liveWriters.set(row.id, writer);
      holder.onRelease(() => this.liveWriters.delete(row.id));
      return writer;
    } catch (e) {
      holder.release();
      throw e;
    }
  }

  async status(ctx: RequestContext, ref: string): Promise<Status> {
    const row = this.db.getIngest(ctx.namespace, ref);
    if (!row) throw notFound(`ingest ${ref}: not found`);
    return this.statusOf(row);
  }

  async listStatuses(ctx: RequestContext, filters: string[]): Promise<Status[]> {
    const filter = parseFilters(filters);
    const statuses = await Promise.all(this.db.listIngests(ctx.namespace).map((row) => this.statusOf(row)));
    return statuses.filter((status) => filter.match(statusAdaptor(status)));
  }

  async abort(ctx: RequestContext, ref: string): Promise<void> {
    const row = this.db.getIngest(ctx.namespace, ref);
    if (!row) throw notFound(`ingest ref ${JSON.stringify(ref)}: not found`);
    const holder = await this.locks.acquire(lockKey(ctx.namespace, ref), ref);
    try {
      this.leases.releaseIngest(ctx, ref);
      await this.removeIngest(ctx.namespace, row);
    } finally {
      holder.release();
    }
  }

  // ---- used by IngestWriter ----

  checkBlobSize(size: number): void {
    const max = this.options.maxBlobSize ?? 0;
    if (max > 0 && size > max) throw resourceExhausted(`blob size ${size} exceeds the configured maximum of ${max} bytes`);
  }

  async removeIngest(namespace: string, row: IngestRow): Promise<void> {
    this.db.deleteIngest(namespace, row.ref);
    this.leases.forgetIngest(namespace, row.ref);
    await this.dropIngestFiles(row.id);
  }

  // ---- used by the collector (src/store/gc.ts) ----

  /** True while a writer holds the ingest: the collector leaves it alone. */
  ingestInUse(namespace: string, ref: string): boolean {
    return this.locks.isLocked(lockKey(namespace, ref));
  }

  /** Removes the staged bytes of an ingest whose row is gone. */
  async dropIngestFiles(id: string): Promise<void> {
    this.progressCache.delete(id);
    await this.backend.removeIngest(id);
  }

  /** Removes the file of a blob whose row is gone, unless a commit brought it back meanwhile. */
  async removeBlobFile(digest: string, size: number): Promise<boolean> {
    return this.digestMutex.run(digest, async () => {
      // An early publish of the digest is an ingest's, waiting for its commit.
      if (this.db.getBlob(digest) || this.earlyPublished.has(digest)) return false;
      await this.backend.deleteBlob(digest);
      this.observer.blobDeleted(size);
      return true;
    });
  }

  rememberProgress(id: string, progress: IngestProgress): void {
    this.progressCache.delete(id);
    this.progressCache.set(id, { hash: progress.hash.copy(), offset: progress.offset });
    if (this.progressCache.size > PROGRESS_CACHE_SIZE) {
      this.progressCache.delete(this.progressCache.keys().next().value!);
    }
  }

  async stageBaseBlob(row: IngestRow): Promise<IngestProgress> {
    if (!row.baseDigest) throw new Error('stageBaseBlob without a base');
    if (!this.db.getBlob(row.baseDigest)) throw failedPrecondition(`content ${row.baseDigest} was removed while ingest ${row.ref} was based on it`);
    await this.backend.copyBlobToIngest(row.baseDigest, row.id);
    return { ...(await this.hashStaged(row.id)), file: await this.backend.openIngest(row.id) };
  }

  /**
   * Publishes an ingest whose client has written every byte it declared,
   * before its commit arrives. containerd commits inside its metadata write
   * transaction, one blob at a time: what is done here, outside it (the
   * fsyncs of the bytes and of the blob's name), no longer holds up every
   * other commit. Until the commit records it the blob has no row, like one
   * a failed commit leaves: nothing reads it, and after a crash start-up
   * reconciliation removes it. The writer calls withdrawEarly before the
   * bytes change or when it ends without a commit.
   */
  async publishEarly(row: IngestRow, digest: string): Promise<void> {
    await this.digestMutex.run(digest, async () => {
      if (this.db.getBlob(digest)) return;
      await this.backend.publish(row.id, digest);
      this.earlyPublished.set(digest, row.id);
    });
  }

  /** Takes back what publishEarly published for this ingest, unless a commit of the digest has superseded it. */
  async withdrawEarly(row: IngestRow, digest: string): Promise<void> {
    await this.digestMutex.run(digest, async () => {
      // Every commit of the digest clears its entry: one still ours is a blob without a row.
      if (this.earlyPublished.get(digest) !== row.id) return;
      this.earlyPublished.delete(digest);
      await this.backend.deleteBlob(digest);
    });
  }

  async commitIngest(ctx: RequestContext, row: IngestRow, digest: string, size: number, labels: Labels): Promise<Info> {
    validateLabels(labels);
    // Under the digest's lock: two writers of one digest in one namespace may both get this far.
    return this.digestMutex.run(digest, async () => {
      // Whoever commits the digest now owns its blob: another ingest's early publish of it is superseded.
      const publishedEarly = this.earlyPublished.get(digest) === row.id;
      this.earlyPublished.delete(digest);
      if (this.db.getContent(ctx.namespace, digest)) {
        this.leases.holdContent(ctx, digest);
        this.leases.releaseIngest(ctx, row.ref);
        await this.removeIngest(ctx.namespace, row);
        throw alreadyExists(`content ${digest}: already exists`);
      }
      const at = nowNs();
      const stored = this.db.getBlob(digest);
      if (!stored) {
        if (row.baseDigest) throw failedPrecondition(`content ${digest} was removed during the ingest`);
        if (!publishedEarly) await this.backend.publish(row.id, digest);
      }
      // Bytes durable first, then the row: a crash in between leaves only a
      // blob without a row, which start-up reconciliation removes.
      try {
        this.db.lazyTransaction(() => {
          if (!stored) this.db.insertBlob(digest, size, at);
          this.db.insertContent(ctx.namespace, digest, at, labels);
          this.db.deleteIngest(ctx.namespace, row.ref);
          this.leases.releaseIngest(ctx, row.ref);
          this.leases.holdContent(ctx, digest);
        });
      } catch (e) {
        // Disk full, say: take the unrecorded blob back out (or leave it to
        // start-up reconciliation if even that fails); the ingest keeps its bytes for a retry.
        if (!stored) await this.backend.deleteBlob(digest).catch(() => undefined);
        throw e;
      }
      // A commit that returns is on disk; concurrent commits share this flush (group commit).
      await this.db.sync();
      this.progressCache.delete(row.id);
      // The commit is recorded: a staged copy left behind is reconciliation's to remove, not the client's error.
      await this.backend.removeIngest(row.id).catch(() => undefined);
      if (!stored) this.observer.blobCommitted(size);
      return { digest, size, createdAt: at, updatedAt: at, labels };
    });
  }

  // ---- internals ----

  private async statusOf(row: IngestRow): Promise<Status> {
    const live = this.liveWriters.get(row.id);
    if (live) return live.status();
    const offset = row.baseDigest ? this.baseOffset(row) : ((await this.backend.ingestSize(row.id)) ?? 0);
    return { ref: row.ref, offset, total: row.total, expected: row.expected, startedAt: row.startedAt, updatedAt: row.updatedAt };
  }

  /** Where an ingest based on a shared blob stands before anything is staged: at that blob's end. */
  private baseOffset(row: IngestRow): number {
    return row.baseDigest ? (this.db.getBlob(row.baseDigest)?.size ?? 0) : 0;
  }

  private async resumeProgress(row: IngestRow): Promise<IngestProgress | undefined> {
    if (row.baseDigest) return undefined;
    const size = (await this.backend.ingestSize(row.id)) ?? 0;
    const cached = this.progressCache.get(row.id);
    if (cached && cached.offset === size) return { hash: cached.hash.copy(), offset: size };
    return this.hashStaged(row.id);
  }

  private async hashStaged(id: string): Promise<IngestProgress> {
    const hash = newHash();
    let offset = 0;
    if ((await this.backend.ingestSize(id)) !== undefined) {
      for await (const chunk of this.backend.readIngest(id)) {
        hash.update(chunk);
        offset += chunk.length;
      }
    }
    return { hash, offset };
  }
}

function lockKey(namespace: string, ref: string): string {
  return `${namespace}\u0000${ref}`;
}

function validateLabels(labels: Labels): void {
  for (const [key, value] of Object.entries(labels)) {
    if (key.length + value.length > MAX_LABEL_SIZE) {
      throw invalidArgument(`label key and value length (${key.length + value.length} bytes) greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${key.slice(0, 80)}`);
    }
  }
}

