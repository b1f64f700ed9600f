import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { createHash, randomUUID } from 'node:crypto';
import { rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { S3Config } from '../config/config';
import { formatDigest, isDigest, newHash, parseDigest } from '../store/digest';
import { fromSystemError, invalidArgument, notFound, StoreError } from '../store/errors';
import type { BlobReader } from '../store/types';
import type { BlobBackend, IngestFile } from './backend';
import { FileCache, type StagedFile } from './cache';
import { fileChunks } from './file-chunks';
import { HandleCache, type HandleLease, type OpenedFile } from './handle-cache';
import { LocalBlobBackend } from './local';
import { PartBuffers } from './part-buffers';

export interface S3BackendOptions {
  /**
   * Reads go through a small cache of this backend's own, in a temporary
   * directory removed by close(), instead of the shared one: for fsck, whose
   * reads must reach the objects themselves, not copies that could hide damage.
   */
  privateCache?: boolean;
}

export interface S3InitOptions {
  /**
   * This process owns the prefix (it holds the root's lock): it may abort
   * multipart uploads it did not start, which only a crashed run can have left.
   */
  exclusive: boolean;
  logger?: Logger;
}

/** Unit of the read cache, of read-ahead, and of multipart uploads. */
const CHUNK_SIZE = 8 << 20;
/** S3's limit on the parts of one upload. */
const MAX_PARTS = 10_000;
/** Part buffers in memory at once, over all uploads: bounds the memory of publishing. */
const UPLOAD_CONCURRENCY = 4;
/** Chunk downloads at once; they stream to disk, so this bounds connections rather than memory. */
const FETCH_CONCURRENCY = 8;
/** Chunks fetched ahead of a reader. */
const READ_AHEAD = 2;
/** Sizes remembered so that opening a blob (once per containerd 32 KiB read) needs no request. */
const SIZES_REMEMBERED = 100_000;
/** Enough for read-ahead, for a backend reading through a private cache. */
const PRIVATE_CACHE_BYTES = 64 << 20;
/** S3's limit for a single-request copy; larger objects are copied in parts. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;
const COPY_PART_SIZE = 1024 ** 3;
const SWEEP_INTERVAL_MS = 60 * 60 * 1000;
/** A download whose body stops flowing this long is given up (the client's own timeouts end with the headers). */
const BODY_IDLE_MS = 30_000;

/**
 * Blobs as objects in an S3-compatible bucket: <prefix>blobs/<alg>/<hex>.
 *
 * Ingests are staged on local disk by a LocalBlobBackend, so they resume
 * after a restart exactly as with the local backend. Publishing uploads the
 * staged bytes to the blob's final key, re-hashing them on the way and
 * completing the upload only when they match the digest: S3 makes a PUT or a
 * completed multipart upload visible atomically, so an object under a blob
 * key is always whole and verified.
 *
 * Reads go through a local LRU cache of CHUNK_SIZE pieces, filled by ranged
 * GETs with read-ahead: containerd reads in 32 KiB calls. Publishing fills
 * the cache too, since a commit is usually followed by reading it back
 * (unpacking a layer just pulled).
 */
export class S3BlobBackend implements BlobBackend {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly staging: LocalBlobBackend;
  private readonly cache: FileCache;
  private readonly sizes = new Map<string, number>();
  /** Chunk downloads in flight (read-ahead included), by cache key, so that none is fetched twice at once. */
  private readonly fetching = new Map<string, Promise<void>>();
  /** Multipart uploads this process has in flight: never abandoned. */
  private readonly uploads = new Set<string>();
  private readonly partSlots = new Slots(UPLOAD_CONCURRENCY);
  private readonly partBuffers = new PartBuffers(CHUNK_SIZE);
  private readonly fetchSlots = new Slots(FETCH_CONCURRENCY);
  /** Open chunk files, shared by readers: containerd sends one Read call per 32 KiB, and an open and close per call cost more than the read. */
  private readonly handles = new HandleCache<CachedChunk>((key) => this.openChunk(key));
  private readonly privateCache: boolean;
  private logger?: Logger;
  private sweeper?: NodeJS.Timeout;

  constructor(root: string, settings: S3Config, options: S3BackendOptions = {}) {
    this.bucket = settings.bucket;
    this.prefix = settings.prefix && !settings.prefix.endsWith('/') ? `${settings.prefix}/` : settings.prefix;
    // The SDK would print, on stderr and outside the log format, that its future versions need Node 22: nothing to act on here.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      endpoint: settings.endpoint || undefined,
      // Endpoints other than AWS accept any region; AWS takes it from the environment.
      region: settings.region || (settings.endpoint ? 'us-east-1' : undefined),
      forcePathStyle: settings.forcePathStyle,
      credentials: settings.accessKeyId ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } : undefined,
      // Flexible checksums (aws-chunked bodies) are not understood by every S3
      // implementation; parts carry Content-MD5 instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Without timeouts a stalled connection would hang a read forever.
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    });
    this.staging = new LocalBlobBackend(root);
    this.privateCache = options.privateCache ?? false;
    // A file the cache drops must not stay open (and take disk space) for readers to come.
    const evicted = (key: string): void => this.handles.evict(key);
    this.cache = this.privateCache
      ? new FileCache(join(tmpdir(), `contentd-cache-${randomUUID()}`), PRIVATE_CACHE_BYTES, evicted)
      : new FileCache(settings.cacheDir || join(root, 's3-cache'), settings.cacheMaxBytes, evicted);
  }

  async init(options: S3InitOptions): Promise<void> {
    this.logger = options.logger;
    await this.staging.init();
    await this.cache.init();
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).catch((e: unknown) => {
      throw isNotFound(e) ? new Error(`object storage: bucket ${this.bucket} does not exist`) : storageError(`bucket ${this.bucket}`, e);
    });
    if (!options.exclusive) return;
    await this.sweepUploads(0);
    // Aborts that failed (the endpoint was down, say) are retried; uploads just started are left alone.
    this.sweeper = setInterval(() => void this.sweepUploads(SWEEP_INTERVAL_MS).catch((e: unknown) => this.warn('sweeping multipart uploads failed', e)), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  // ---- ingests: staged locally ----

  openIngest(id: string): Promise<IngestFile> {
    return this.staging.openIngest(id);
  }

  ingestSize(id: string): Promise<number | undefined> {
    return this.staging.ingestSize(id);
  }

  readIngest(id: string): AsyncIterable<Buffer> {
    return this.staging.readIngest(id);
  }

  removeIngest(id: string): Promise<void> {
    return this.staging.removeIngest(id);
  }

  listIngests(): Promise<string[]> {
    return this.staging.listIngests();
  }

  async copyBlobToIngest(digest: string, id: string): Promise<void> {
    const reader = await this.openBlob(digest);
    try {
      const file = await this.staging.openIngest(id);
      try {
        await file.truncate();
        for await (const piece of readAll(reader)) await file.append(piece);
      } finally {
        await file.close();
      }
    } finally {
      await reader.close();
    }
  }

  // ---- blobs ----

  async publish(id: string, digest: string): Promise<void> {
    const size = await this.staging.ingestSize(id);
    if (size === undefined) throw new Error(`ingest ${id} has no staged bytes to publish as ${digest}`);
    await this.upload(digest, size, this.staging.readIngest(id));
  }

  async importFile(path: string, digest: string): Promise<'linked' | 'copied'> {
    const { size } = await stat(path).catch((e: unknown) => {
      throw fromSystemError(e);
    });
    await this.upload(digest, size, fileChunks(path));
    return 'copied';
  }

  async openBlob(digest: string): Promise<BlobReader> {
    const size = this.sizes.get(digest) ?? (await this.blobSize(digest));
    if (size === undefined) throw notFound(`content ${digest}: blob object missing`);
    const group = cacheGroup(digest);
    return new ChunkedReader(size, (index) => this.chunk(group, size, index));
  }

  async blobSize(digest: string): Promise<number | undefined> {
    const size = await this.objectSize(this.blobKey(digest));
    if (size === undefined) this.sizes.delete(digest);
    else this.rememberSize(digest, size);
    return size;
  }

  async deleteBlob(digest: string): Promise<void> {
    this.sizes.delete(digest);
    await this.cache.removeGroup(cacheGroup(digest));
    await s3(`delete ${digest}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) })));
  }

  async *listBlobs(): AsyncIterable<string> {
    const base = `${this.prefix}blobs/`;
    let token: string | undefined;
    do {
      const page = await s3('list blobs', () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base, ContinuationToken: token })));
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        const entry = entryName(object.Key.slice(base.length));
        if (object.Size !== undefined && isDigest(entry)) this.rememberSize(entry, object.Size);
        yield entry;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async quarantine(entry: string): Promise<string> {
    const source = this.entryKey(entry);
    const size = await this.objectSize(source);
    if (size === undefined) throw notFound(`blob entry ${entry}: no such object`);
    const target = `${this.prefix}quarantine/${entry.replace(':', '-')}.${Date.now()}`;
    await this.copyObject(source, target, size);
    await s3(`delete ${entry}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: source })));
    if (isDigest(entry)) {
      this.sizes.delete(entry);
      await this.cache.removeGroup(cacheGroup(entry));
    }
    return `s3://${this.bucket}/${target}`;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all(this.fetching.values());
    await this.handles.closeAll();
    await this.staging.close();
    this.client.destroy();
    if (this.privateCache) await rm(this.cache.dir, { recursive: true, force: true });
  }

  /** Aborts the multipart uploads under this store's prefix that this process is not running, started at least minAgeMs ago. */
  async sweepUploads(minAgeMs: number): Promise<number> {
    let aborted = 0;
    const startedBefore = Date.now() - minAgeMs;
    for (const base of [`${this.prefix}blobs/`, `${this.prefix}quarantine/`]) {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await s3('list multipart uploads', () =>
          this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: base, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })),
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || this.uploads.has(upload.UploadId)) continue;
          if ((upload.Initiated?.getTime() ?? 0) > startedBefore) continue;
          await this.abortUpload(upload.Key, upload.UploadId);
          aborted++;
        }
        [keyMarker, uploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
      } while (keyMarker !== undefined);
    }
    if (aborted > 0) this.logger?.warn('aborted abandoned multipart uploads', { count: aborted });
    return aborted;
  }

  // ---- uploading ----

  /**
   * Uploads size bytes from source to the key of digest. The object becomes
   * visible only if the bytes hash to digest; otherwise nothing is left
   * behind. The bytes also fill the read cache, when they fit it comfortably.
   */
  private async upload(digest: string, size: number, source: AsyncIterable<Buffer>): Promise<void> {
    const key = this.blobKey(digest);
    const { algorithm } = parseDigest(digest);
    const hash = newHash(algorithm);
    const partSize = partSizeFor(size);
    const warm: StagedFile[] | undefined = size <= this.cache.maxBytes / 2 ? [] : undefined;
    const take = async (part: Buffer): Promise<void> => {
      hash.update(part);
      for (let at = 0; warm && at < part.length; at += CHUNK_SIZE) {
        const piece = part.subarray(at, at + CHUNK_SIZE);
        warm.push(await this.cache.stage((file) => file.writeFile(piece)));
      }
    };
    const verify = (): void => {
      const actual = formatDigest(hash, algorithm);
      if (actual !== digest) throw new Error(`staged bytes hash to ${actual}, not ${digest}: not published`);
    };
    const parts = partsOf(source, partSize, size, (length) => this.partBuffers.take(length))[Symbol.asyncIterator]();
    this.partBuffers.begin();
    try {
      if (size <= partSize) {
        await this.partSlots.run(async () => {
          const { value } = await parts.next();
          const body = value ?? Buffer.alloc(0);
          await take(body);
          if (!(await parts.next()).done) throw new Error(`staged bytes longer than ${size}`);
          verify();
          await s3(`upload ${digest}`, () =>
            this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, ContentMD5: md5(body) })),
          );
        });
      } else {
        await this.multipart(key, async (uploadId) => {
          const uploaded = await this.uploadParts(key, uploadId, parts, take);
          verify();
          return uploaded;
        });
      }
    } catch (e) {
      await Promise.all((warm ?? []).map((staged) => this.cache.discard(staged)));
      throw e;
    } finally {
      // A failure leaves the source half read: close it.
      await parts.return(undefined).catch(() => undefined);
      this.partBuffers.end();
    }
    this.rememberSize(digest, size);
    for (const [index, staged] of (warm ?? []).entries()) {
      await this.cache.adopt(chunkKey(digest, index), staged).catch((e: unknown) => this.warn('caching a published blob failed', e));
    }
  }

  /** Uploads the parts in parallel, as part buffers become free; returns them for completion. */
  private async uploadParts(key: string, uploadId: string, parts: AsyncIterator<Buffer>, take: (part: Buffer) => Promise<void>): Promise<CompletedPart[]> {
    const sent: Array<Promise<CompletedPart>> = [];
    const state: { failure?: unknown } = {};
    try {
      for (let number = 1; ; number++) {
        await this.partSlots.acquire();
        let next: IteratorResult<Buffer>;
        try {
          if (state.failure !== undefined) throw state.failure;
          next = await parts.next();
          if (!next.done) await take(next.value);
        } catch (e) {
          this.partSlots.release();
          throw e;
        }
        if (next.done) {
          this.partSlots.release();
          break;
        }
        const body = next.value;
        const part = s3(`upload part ${number} of ${key}`, () =>
          this.client.send(
            new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: body.length, ContentMD5: md5(body) }),
          ),
        )
          .then((res) => ({ PartNumber: number, ETag: res.ETag }))
          .finally(() => {
            this.partBuffers.give(body);
            this.partSlots.release();
          });
        part.catch((e: unknown) => (state.failure ??= e));
        sent.push(part);
      }
      return await Promise.all(sent);
    } catch (e) {
      // Parts still in flight would land after an abort and linger: let them finish first.
      await Promise.allSettled(sent);
      throw e;
    }
  }

  /** Runs a multipart upload to key: completed if fill() returns its parts, aborted if it throws. */
  private async multipart(key: string, fill: (uploadId: string) => Promise<CompletedPart[]>): Promise<void> {
    const created = await s3(`start upload of ${key}`, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key })));
    const uploadId = created.UploadId;
    if (!uploadId) throw new StoreError('Unavailable', `object storage: start upload of ${key}: no upload id in the answer`);
    this.uploads.add(uploadId);
    try {
      const parts = await fill(uploadId);
      // The answer's ETag may be empty (Ceph): success is all we need.
      await s3(`complete upload of ${key}`, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
      );
    } catch (e) {
      await this.abortUpload(key, uploadId).catch((err: unknown) => this.warn('aborting a multipart upload failed; the hourly sweep retries', err));
      throw e;
    } finally {
      this.uploads.delete(uploadId);
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    await s3(`abort upload of ${key}`, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))).catch(
      (e: unknown) => {
        // Already gone is what we wanted.
        if (!isNotFound((e as StoreError).cause)) throw e;
      },
    );
  }

  private async copyObject(source: string, target: string, size: number): Promise<void> {
    const copySource = `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`;
    if (size <= MAX_SINGLE_COPY) {
      await s3(`copy ${source}`, () => this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: copySource })));
      return;
    }
    await this.multipart(target, async (uploadId) => {
      const parts: CompletedPart[] = [];
      for (let start = 0, number = 1; start < size; start += COPY_PART_SIZE, number++) {
        const range = `bytes=${start}-${Math.min(start + COPY_PART_SIZE, size) - 1}`;
        const res = await s3(`copy part ${number} of ${source}`, () =>
          this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, PartNumber: number, CopySource: copySource, CopySourceRange: range })),
        );
        parts.push({ PartNumber: number, ETag: res.CopyPartResult?.ETag });
      }
      return parts;
    });
  }

  // ---- reading ----

  /** One chunk of a blob, for reading; fetches the chunks after it ahead of the reader. */
  private chunk(group: string, size: number, index: number): Promise<HandleLease<CachedChunk>> {
    this.readAhead(group, size, index);
    return this.handles.acquire(`${group}/${index}`);
  }

  /** Opens a chunk (named by its cache key) from the cache, or fetches it into the cache first. */
  private async openChunk(key: string): Promise<CachedChunk> {
    const { digest, index } = parseChunkKey(key);
    const size = this.sizes.get(digest) ?? (await this.blobSize(digest));
    if (size === undefined) throw notFound(`content ${digest}: blob object missing`);
    const length = chunkLength(size, index);
    let handle = await this.cache.open(key, length);
    const readingAhead = handle ? undefined : this.fetching.get(key);
    if (readingAhead) {
      await readingAhead;
      handle = await this.cache.open(key, length);
    }
    if (!handle) {
      await this.fetchSlots.acquire();
      handle = await this.fetch(key, length);
    }
    const opened = handle;
    return { handle: opened, size: length, close: () => opened.close() };
  }

  /** Starts fetching the chunks after index that are neither cached nor on their way, while fetch slots are free. */
  private readAhead(group: string, size: number, index: number): void {
    if (this.cache.maxBytes < CHUNK_SIZE * (READ_AHEAD + 2)) return;
    for (let next = index + 1; next <= index + READ_AHEAD && next * CHUNK_SIZE < size; next++) {
      const key = `${group}/${next}`;
      if (this.cache.has(key) || this.fetching.has(key)) continue;
      if (!this.fetchSlots.tryAcquire()) return;
      this.fetch(key, chunkLength(size, next)).then(
        (handle) => handle.close(),
        () => undefined,
      );
    }
  }

  /** Downloads one chunk into the cache and returns it open. The caller holds a fetch slot, which this releases. */
  private fetch(key: string, length: number): Promise<FileHandle> {
    const { digest, index } = parseChunkKey(key);
    const work = this.cache.fill(key, (file) => this.download(digest, index * CHUNK_SIZE, length, file));
    const done = work.then(
      () => undefined,
      () => undefined,
    );
    this.fetching.set(key, done);
    void done.then(() => {
      this.fetchSlots.release();
      if (this.fetching.get(key) === done) this.fetching.delete(key);
    });
    return work;
  }

  private async download(digest: string, start: number, length: number, file: FileHandle): Promise<void> {
    const what = `read ${digest} at ${start}`;
    let received = 0;
    let idle: NodeJS.Timeout | undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest), Range: `bytes=${start}-${start + length - 1}` }));
      const body = res.Body as Readable;
      const stalled = (): void => void body.destroy(new Error(`no data for ${BODY_IDLE_MS} ms`));
      idle = setTimeout(stalled, BODY_IDLE_MS);
      for await (const piece of body as AsyncIterable<Uint8Array>) {
        idle.refresh();
        await file.writeFile(piece);
        received += piece.length;
      }
    } catch (e) {
      if (isNotFound(e)) {
        this.sizes.delete(digest);
        throw notFound(`content ${digest}: blob object missing`);
      }
      throw storageError(what, e);
    } finally {
      clearTimeout(idle);
    }
    if (received !== length) throw storageError(what, new Error(`got ${received} of ${length} bytes: the object changed`));
  }

  // ---- names ----

  private blobKey(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return `${this.prefix}blobs/${algorithm}/${encoded}`;
  }

  /** The key of an entry as listBlobs() names it. */
  private entryKey(entry: string): string {
    const sep = entry.indexOf(':');
    const relative = sep < 0 ? entry : `${entry.slice(0, sep)}/${entry.slice(sep + 1)}`;
    // Some S3 implementations normalise dot segments, which could reach outside blobs/.
    if (relative === '' || relative.split('/').some((part) => part === '.' || part === '..')) {
      throw invalidArgument(`${JSON.stringify(entry)} is not a blob entry`);
    }
    return `${this.prefix}blobs/${relative}`;
  }

  private async objectSize(key: string): Promise<number | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw storageError(`size of ${key}`, e);
    }
  }

  private rememberSize(digest: string, size: number): void {
    this.sizes.delete(digest);
    this.sizes.set(digest, size);
    if (this.sizes.size > SIZES_REMEMBERED) this.sizes.delete(this.sizes.keys().next().value!);
  }

  private warn(message: string, error: unknown): void {
    this.logger?.warn(message, { error: error instanceof Error ? error.message : String(error) });
  }
}

/** A chunk of a blob in the read cache, open. */
interface CachedChunk extends OpenedFile {
  handle: FileHandle;
}

/** Reads a blob chunk by chunk; a read stops at a chunk's end, as BlobReader allows. */
class ChunkedReader implements BlobReader {
  constructor(
    readonly size: number,
    private readonly chunk: (index: number) => Promise<HandleLease<CachedChunk>>,
  ) {}

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    const index = Math.floor(position / CHUNK_SIZE);
    const offset = position - index * CHUNK_SIZE;
    const lease = await this.chunk(index);
    try {
      const want = Math.min(length, this.size - position, CHUNK_SIZE - offset);
      const { bytesRead } = await lease.handle.read(buffer, 0, want, offset);
      return bytesRead;
    } finally {
      lease.release();
    }
  }

  async close(): Promise<void> {}
}

/** A counting semaphore. */
class Slots {
  private readonly waiting: Array<() => void> = [];

  constructor(private free: number) {}

  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  async acquire(): Promise<void> {
    if (!this.tryAcquire()) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Buffers of partSize (the last one shorter) from a source that must hold exactly size bytes. */
async function* partsOf(source: AsyncIterable<Buffer>, partSize: number, size: number, allocate: (length: number) => Buffer): AsyncGenerator<Buffer> {
  let produced = 0;
  // Allocated only when needed, so that a small blob does not cost a whole part.
  let part = allocate(Math.min(partSize, size));
  let filled = 0;
  for await (const chunk of source) {
    for (let used = 0; used < chunk.length; ) {
      if (filled === part.length) throw new Error(`staged bytes longer than ${size}`);
      const n = chunk.copy(part, filled, used);
      used += n;
      filled += n;
      if (filled === part.length) {
        yield part;
        produced += filled;
        part = allocate(Math.min(partSize, size - produced));
        filled = 0;
      }
    }
  }
  if (produced + filled !== size) throw new Error(`staged bytes end at ${produced + filled} of ${size}`);
}

/** A blob's bytes in order, read into one reused buffer: a chunk is valid only until the next is asked for. */
async function* readAll(reader: BlobReader): AsyncIterable<Buffer> {
  const buffer = Buffer.allocUnsafe(Math.min(1 << 20, reader.size));
  for (let position = 0; position < reader.size; ) {
    const n = await reader.read(buffer, position, Math.min(buffer.length, reader.size - position));
    if (n === 0) throw new Error(`blob ends at ${position} of ${reader.size} bytes`);
    position += n;
    yield buffer.subarray(0, n);
  }
}

/** CHUNK_SIZE, or a multiple of it large enough to stay within S3's part limit. */
function partSizeFor(size: number): number {
  return Math.max(1, Math.ceil(size / MAX_PARTS / CHUNK_SIZE)) * CHUNK_SIZE;
}

function chunkKey(digest: string, index: number): string {
  return `${cacheGroup(digest)}/${index}`;
}

/** The blob and the chunk a cache key names: "<alg>/<hex>/<index>". */
function parseChunkKey(key: string): { digest: string; index: number } {
  const [algorithm, encoded, index] = key.split('/');
  return { digest: `${algorithm}:${encoded}`, index: Number(index) };
}

function chunkLength(size: number, index: number): number {
  return Math.min(CHUNK_SIZE, size - index * CHUNK_SIZE);
}

function cacheGroup(digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `${algorithm}/${encoded}`;
}

/** A key below blobs/ as listBlobs() names it: "sha256/<hex>" becomes "sha256:<hex>". */
function entryName(relative: string): string {
  const sep = relative.indexOf('/');
  return sep < 0 ? relative : `${relative.slice(0, sep)}:${relative.slice(sep + 1)}`;
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

function isNotFound(e: unknown): boolean {
  return e instanceof S3ServiceException && (e.$metadata.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.name === 'NoSuchUpload');
}

/** Object storage failing is the store being unavailable, which clients retry. */
function storageError(what: string, e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const detail = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  return new StoreError('Unavailable', `object storage: ${what}: ${detail}`, { cause: e });
}

async function s3<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw storageError(what, e);
  }
}
