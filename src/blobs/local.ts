import { randomUUID } from 'node:crypto';
import { closeSync, constants, fstatSync, fsync, ftruncate, linkSync, mkdirSync, open as openCallback, openSync, read, readSync, rmSync, write } from 'node:fs';
import { mkdir, readdir, rename, stat, copyFile, link } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { parseDigest } from '../store/digest';
import { fromSystemError, invalidArgument, notFound } from '../store/errors';
import type { BlobReader } from '../store/types';
import type { BlobBackend, IngestFile } from './backend';
import { HandleCache, type HandleLease, type OpenedFile } from './handle-cache';
import { ReadAhead, type ReadAheadFile } from './read-ahead';
import { fileChunks } from './file-chunks';

/**
 * Blobs as files on a local filesystem: <root>/blobs/<alg>/<hex>, ingests in
 * <root>/ingest/<id>, damaged blobs moved aside to <root>/quarantine. All
 * live on the same filesystem so publishing is a hard link, which is atomic
 * and keeps the ingest intact until the store has recorded the commit. Files
 * are created 0600 / directories 0700: the content of private images must
 * not be world-readable.
 *
 * On the commit path, the cheap metadata calls (opening existing files,
 * close, link, unlink) run inline: a hand-off to libuv's thread pool and back
 * costs more CPU and latency than the call itself, and a small commit makes a
 * dozen of them. Creating files, data writes and fsyncs, which can wait on
 * the kernel or the disk, go to the pool.
 */
export class LocalBlobBackend implements BlobBackend {
  private readonly blobsDir: string;
  private readonly ingestDir: string;
  private readonly quarantineDir: string;
  private readonly readAhead = new ReadAhead();
  /**
   * Opened and closed inline, like small reads: an open and an fstat of a
   * file in the kernel's caches, or the close of a read-only descriptor, cost
   * less than trips through the thread pool, and an image's small blobs are
   * each opened and closed once (fresh 4 KiB blobs: server CPU 105 → 70 µs
   * per blob for the close alone). A cold lookup blocks the event loop for
   * one disk read; closing the last descriptor of a blob deleted while it was
   * read frees its blocks inline, as deleteBlob's unlink does anyway.
   */
  private readonly handles = new HandleCache<LocalFile>(async (digest) => {
    const fd = openSync(this.blobPath(digest), 'r');
    try {
      const size = fstatSync(fd).size;
      const file: ReadAheadFile = { size, readAt: async (buffer, position, length) => (await readFd(fd, buffer, 0, length, position)).bytesRead };
      const close = async (): Promise<void> => {
        await this.readAhead.forget(file);
        closeSync(fd);
      };
      return { fd, size, file, close };
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  });

  constructor(root: string) {
    this.blobsDir = join(root, 'blobs');
    this.ingestDir = join(root, 'ingest');
    this.quarantineDir = join(root, 'quarantine');
  }

  async init(): Promise<void> {
    await mkdir(join(this.blobsDir, 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.blobsDir, algorithm, encoded);
  }

  private ingestPath(id: string): string {
    return join(this.ingestDir, id);
  }

  async openIngest(id: string): Promise<IngestFile> {
    let fd: number;
    try {
      // Not inline: creating a file can take the kernel half a millisecond (ext4's inode allocation).
      fd = await openFd(this.ingestPath(id), constants.O_WRONLY | constants.O_CREAT, 0o600);
    } catch (e) {
      throw fromSystemError(e);
    }
    try {
      return new LocalIngestFile(fd, fstatSync(fd).size);
    } catch (e) {
      closeSync(fd);
      throw fromSystemError(e);
    }
  }

  async ingestSize(id: string): Promise<number | undefined> {
    return sizeOf(this.ingestPath(id));
  }

  readIngest(id: string): AsyncIterable<Buffer> {
    return fileChunks(this.ingestPath(id));
  }

  async copyBlobToIngest(digest: string, id: string): Promise<void> {
    // FICLONE shares extents on filesystems that support it and copies otherwise.
    await copyFile(this.blobPath(digest), this.ingestPath(id), constants.COPYFILE_FICLONE).catch((e: unknown) => {
      throw fromSystemError(e);
    });
  }

  async importFile(path: string, digest: string, options: { link: boolean }): Promise<'linked' | 'copied'> {
    // Staged as an ingest so that start-up clean-up removes what a crash leaves, then published like a commit.
    const id = `import-${randomUUID()}`;
    const staged = this.ingestPath(id);
    try {
      let how: 'linked' | 'copied' = 'copied';
      if (options.link) {
        how = await link(path, staged).then(
          () => 'linked' as const,
          (e: unknown) => {
            if (LINK_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) return 'copied' as const;
            throw fromSystemError(e);
          },
        );
      }
      if (how === 'copied') {
        await copyFile(path, staged, constants.COPYFILE_FICLONE).catch((e: unknown) => {
          throw fromSystemError(e);
        });
      }
      await this.publish(id, digest);
      return how;
    } finally {
      await this.removeIngest(id);
    }
  }

  async removeIngest(id: string): Promise<void> {
    // recursive: a directory someone left in ingest/ must not stop start-up clean-up.
    rmSync(this.ingestPath(id), { force: true, recursive: true });
  }

  async listIngests(): Promise<string[]> {
    return readdir(this.ingestDir);
  }

  async publish(id: string, digest: string): Promise<void> {
    const source = this.ingestPath(id);
    const target = this.blobPath(digest);
    const dir = dirname(target);
    // Crash safety: the bytes and the name are on disk before the store
    // records the blob (its row is what makes it exist). They are synced
    // together, after the link: a crash before both are on disk leaves a name
    // without a row, which start-up reconciliation removes unread. On a
    // journalling filesystem the file's fsync then carries the link as well.
    try {
      if (mkdirSync(dir, { recursive: true, mode: 0o700 })) await syncPath(this.blobsDir);
      try {
        linkSync(source, target);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // The store publishes only digests it has no record of: this is what a failed commit left.
        this.handles.evict(digest);
        rmSync(target, { force: true });
        linkSync(source, target);
      }
    } catch (e) {
      throw fromSystemError(e);
    }
    await Promise.all([syncPath(source), syncPath(dir)]);
  }

  async openBlob(digest: string): Promise<BlobReader> {
    try {
      return new LocalBlobReader(await this.handles.acquire(digest), this.readAhead);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`content ${digest}: blob file missing`);
      throw e;
    }
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return sizeOf(this.blobPath(digest));
  }

  async deleteBlob(digest: string): Promise<void> {
    this.handles.evict(digest);
    rmSync(this.blobPath(digest), { force: true });
    // Also after: a reader may have opened the file while it was being removed.
    this.handles.evict(digest);
  }

  async *listBlobs(): AsyncIterable<string> {
    for (const entry of await readdir(this.blobsDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) {
        yield entry.name;
        continue;
      }
      for (const encoded of await readdir(join(this.blobsDir, entry.name))) yield `${entry.name}:${encoded}`;
    }
  }

  async quarantine(entry: string): Promise<string> {
    const source = this.entryPath(entry);
    this.handles.evict(entry);
    await mkdir(this.quarantineDir, { recursive: true, mode: 0o700 });
    const target = join(this.quarantineDir, `${entry.replace(':', '-')}.${Date.now()}`);
    await rename(source, target);
    await syncPath(this.quarantineDir);
    await syncPath(dirname(source));
    return target;
  }

  /** The path of an entry as listBlobs() names it, refusing anything that would leave blobs/. */
  private entryPath(entry: string): string {
    const sep = entry.indexOf(':');
    const parts = sep < 0 ? [entry] : [entry.slice(0, sep), entry.slice(sep + 1)];
    if (parts.some((part) => part === '' || part === '.' || part === '..' || /[/\0]/.test(part))) {
      throw invalidArgument(`${JSON.stringify(entry)} is not a blob entry`);
    }
    return join(this.blobsDir, ...parts);
  }

  async close(): Promise<void> {
    await this.handles.closeAll();
  }
}

const openFd = promisify(openCallback);
const readFd = promisify(read);
const writeAt = promisify(write);
const truncateFd = promisify(ftruncate);
const fsyncFd = promisify(fsync);

/** An append is split into concurrent pwrites of at least this size, at most as many as libuv's default thread pool has threads. */
const PARALLEL_PART_MIN = 256 << 10;
const MAX_PARALLEL_WRITES = 4;

class LocalIngestFile implements IngestFile {
  constructor(
    private readonly fd: number,
    private current: number,
  ) {}

  get size(): number {
    return this.current;
  }

  async append(data: Buffer): Promise<void> {
    // A large append goes out as concurrent pwrites of its parts: on a VM the copy into the page cache is the
    // slow part of an ingest (about 400 MB/s here), and several thread-pool threads get through it faster.
    const parts = Math.max(1, Math.min(MAX_PARALLEL_WRITES, Math.floor(data.length / PARALLEL_PART_MIN)));
    const step = Math.ceil(data.length / parts);
    const writes: Promise<void>[] = [];
    for (let start = 0; start < data.length; start += step) writes.push(this.writeFully(data, start, Math.min(start + step, data.length)));
    // Every part settles before a failure is handled, so that none lands after the truncation.
    const failed = (await Promise.allSettled(writes)).find((result) => result.status === 'rejected');
    if (failed) {
      // Leave the file as long as what was acknowledged, so offsets stay true.
      await truncateFd(this.fd, this.current).catch(() => undefined);
      throw fromSystemError(failed.reason);
    }
    this.current += data.length;
  }

  private async writeFully(data: Buffer, start: number, end: number): Promise<void> {
    for (let done = start; done < end; ) {
      done += (await writeAt(this.fd, data, done, end - done, this.current + done)).bytesWritten;
    }
  }

  async truncate(): Promise<void> {
    await truncateFd(this.fd, 0);
    this.current = 0;
  }

  async close(): Promise<void> {
    closeSync(this.fd);
  }
}

/**
 * Reads up to this size run on the event loop: from the page cache a 32 KiB
 * pread takes microseconds, against tens for a hand-off to libuv's thread
 * pool and back (32 KiB ReadAt through containerd: −15% server CPU and
 * latency). A cold read blocks other requests for one disk read.
 */
const INLINE_READ_MAX = 64 << 10;

/** A committed blob's descriptor, shared through the handle cache. */
interface LocalFile extends OpenedFile {
  fd: number;
  /** The same descriptor for reads through the thread pool, read ahead. */
  file: ReadAheadFile;
}

/** Reads through a shared cached handle; close() gives it back to the cache. */
class LocalBlobReader implements BlobReader {
  constructor(
    private readonly lease: HandleLease<LocalFile>,
    private readonly readAhead: ReadAhead,
  ) {}

  get size(): number {
    return this.lease.size;
  }

  async read(buffer: Buffer, position: number, length: number): Promise<number> {
    // Small reads (containerd's unpack reads 32 KiB per RPC) cost less inline than a trip through the thread pool.
    if (length <= INLINE_READ_MAX) return readSync(this.lease.fd, buffer, 0, length, position);
    return this.readAhead.read(this.lease.file, buffer, position, length);
  }

  async close(): Promise<void> {
    this.lease.release();
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** link() errors meaning "not here" (another filesystem, no hard links, link limit, hardlink protection): copy instead. */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** fsync of a file or directory: a directory entry is durable only once its directory is synced. */
async function syncPath(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}
