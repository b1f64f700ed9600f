import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fromSystemError } from '../store/errors';

/**
 * A size-bounded cache of immutable files on local disk, evicted least
 * recently used first. Entries are named by relative keys ("a/b/c"); a group
 * is a key's directory ("a/b"), removed as a whole.
 *
 * Safe to delete at any time: an entry that vanished is a miss, and a missing
 * directory is created again on the next fill. Files appear only complete
 * (written to tmp/, fsynced, then renamed) so that a crash never leaves a
 * torn entry to be served as content; a size check on open catches the rest.
 * Recency lives in memory and is rebuilt from modification times at start.
 */
export class FileCache {
  /** Key → size, in recency order (least recent first). */
  private readonly entries = new Map<string, number>();
  private total = 0;
  private readonly tmpDir: string;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
    /** Told of every entry the cache drops, so that whoever keeps its files open can close them. */
    private readonly onEvict: (key: string) => void = () => undefined,
  ) {
    this.tmpDir = join(dir, 'tmp');
  }

  get bytes(): number {
    return this.total;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Indexes what a previous run left, oldest first, and drops stale temporary files. */
  async init(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    const found: Array<{ key: string; size: number; mtime: number }> = [];
    const scan = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (path === this.tmpDir) continue;
        if (entry.isDirectory()) await scan(path);
        else if (entry.isFile()) {
          const info = await stat(path);
          found.push({ key: relative(this.dir, path).split(sep).join('/'), size: info.size, mtime: info.mtimeMs });
        }
      }
    };
    await scan(this.dir);
    for (const { key, size } of found.sort((a, b) => a.mtime - b.mtime)) this.account(key, size);
    // Another process sharing the directory may be filling right now: only old leftovers go.
    const cutoff = Date.now() - STALE_TMP_MS;
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      const modified = (await stat(path).catch(() => undefined))?.mtimeMs ?? Infinity;
      if (modified < cutoff) await rm(path, { force: true });
    }
    await this.evict();
  }

  /**
   * Opens an entry for reading and marks it recently used; undefined on a miss.
   * An entry whose size is not size (torn by a crash) counts as a miss.
   */
  async open(key: string, size: number): Promise<FileHandle | undefined> {
    const known = this.entries.get(key);
    if (known === undefined) return undefined;
    if (known !== size) {
      await this.remove(key);
      return undefined;
    }
    try {
      const handle = await open(this.path(key), 'r');
      this.entries.delete(key);
      this.entries.set(key, known);
      return handle;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e);
      this.forget(key);
      return undefined;
    }
  }

  /** Writes data to a temporary file, durably, for adopt() or discard(). */
  async stage(write: (file: FileHandle) => Promise<void>): Promise<StagedFile> {
    const path = join(this.tmpDir, randomUUID());
    const handle = await open(path, 'wx', 0o600).catch(async (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e);
      // The cache directory was deleted under us: start it again.
      await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
      return open(path, 'wx', 0o600);
    });
    try {
      await write(handle);
      await handle.sync();
      return { path, size: (await handle.stat()).size };
    } catch (e) {
      await rm(path, { force: true });
      throw fromSystemError(e);
    } finally {
      await handle.close();
    }
  }

  /** Makes a staged file the entry for key. */
  async adopt(key: string, staged: StagedFile): Promise<void> {
    const target = this.path(key);
    try {
      await rename(staged.path, target).catch(async (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await mkdir(dirname(target), { recursive: true, mode: 0o700 });
        await rename(staged.path, target);
      });
    } catch (e) {
      await this.discard(staged);
      throw fromSystemError(e);
    }
    this.account(key, staged.size);
    await this.evict();
  }

  /**
   * Fills the entry for key by write() and returns it open for reading, so
   * that the caller can read it even if eviction removes it at once.
   */
  async fill(key: string, write: (file: FileHandle) => Promise<void>): Promise<FileHandle> {
    const staged = await this.stage(write);
    const handle = await open(staged.path, 'r').catch(async (e: unknown) => {
      await this.discard(staged);
      throw fromSystemError(e);
    });
    try {
      await this.adopt(key, staged);
      return handle;
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async discard(staged: StagedFile): Promise<void> {
    await rm(staged.path, { force: true });
  }

  /** Removes every entry of a group. */
  async removeGroup(group: string): Promise<void> {
    const prefix = `${group}/`;
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.forget(key);
    await rm(this.path(group), { recursive: true, force: true });
  }

  private async remove(key: string): Promise<void> {
    this.forget(key);
    await rm(this.path(key), { force: true });
    // The group directory goes with its last entry; ENOTEMPTY just means it has others.
    await rmdir(dirname(this.path(key))).catch(() => undefined);
  }

  private account(key: string, size: number): void {
    this.forget(key);
    this.entries.set(key, size);
    this.total += size;
  }

  private forget(key: string): void {
    const size = this.entries.get(key);
    if (size === undefined) return;
    this.entries.delete(key);
    this.total -= size;
    this.onEvict(key);
  }

  private async evict(): Promise<void> {
    while (this.total > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      await this.remove(oldest.value);
    }
  }

  private path(key: string): string {
    return join(this.dir, ...key.split('/'));
  }
}

export interface StagedFile {
  readonly path: string;
  readonly size: number;
}

/** Temporary files older than this belong to nobody (a fill takes seconds). */
const STALE_TMP_MS = 60 * 60 * 1000;
