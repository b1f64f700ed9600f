/**
 * Read-only handles of committed blobs, shared by concurrent readers and kept
 * open for a while after the last one is done. containerd's content proxy
 * sends one Read RPC per 32 KiB during unpack (about 32 000 per GiB): an
 * open, fstat and close per RPC cost more than the read itself. Blobs never
 * change once committed, so a cached handle always reads the right bytes;
 * whoever removes or replaces a blob file evicts it first.
 */

/** What a backend opens: a file of known size, closed once no reader uses it. */
export interface OpenedFile {
  size: number;
  close(): Promise<void>;
}

/** One reader's use of a cached handle; release() exactly once (closing is the cache's business, not the reader's). */
export type HandleLease<F extends OpenedFile> = Omit<F, 'close'> & { release(): void };

interface Entry<F extends OpenedFile> {
  opening: Promise<F>;
  users: number;
  lastUsed: number;
  /** Evicted while in use: closed when the last user releases it. */
  evicted: boolean;
}

export interface HandleCacheOptions {
  /** Most idle handles kept open. */
  capacity?: number;
  /** Idle handles are closed after this long, so space of blobs deleted behind the server's back is freed. */
  idleMs?: number;
}

export class HandleCache<F extends OpenedFile> {
  /** In least-recently-used order (Map keeps insertion order; a use re-inserts). */
  private readonly entries = new Map<string, Entry<F>>();
  private readonly capacity: number;
  private readonly idleMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly open: (key: string) => Promise<F>,
    options: HandleCacheOptions = {},
  ) {
    this.capacity = options.capacity ?? 128;
    this.idleMs = options.idleMs ?? 10_000;
  }

  async acquire(key: string): Promise<HandleLease<F>> {
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      const created: Entry<F> = { opening: this.open(key), users: 0, lastUsed: 0, evicted: false };
      // A failed open is not cached: the next reader tries again.
      created.opening.catch(() => this.forget(key, created));
      entry = created;
    }
    this.entries.set(key, entry);
    entry.users++;
    let opened: F;
    try {
      opened = await entry.opening;
    } catch (e) {
      entry.users--;
      throw e;
    }
    const used = entry;
    let released = false;
    return {
      ...opened,
      release: () => {
        if (released) return;
        released = true;
        used.users--;
        used.lastUsed = Date.now();
        if (used.evicted) this.closeIfIdle(used);
        else this.trim();
      },
    };
  }

  /** Drops key's handle: now if unused, else when its last reader releases it. */
  evict(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    entry.evicted = true;
    this.closeIfIdle(entry);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((entry) => entry.opening.then((f) => f.close()).catch(() => undefined)));
  }

  private forget(key: string, entry: Entry<F>): void {
    if (this.entries.get(key) === entry) this.entries.delete(key);
  }

  private closeIfIdle(entry: Entry<F>): void {
    if (entry.users > 0) return;
    void entry.opening.then((f) => f.close()).catch(() => undefined);
  }

  /** Closes the least recently used idle handles beyond capacity; starts the idle sweep. */
  private trim(): void {
    let excess = this.entries.size - this.capacity;
    for (const [key, entry] of this.entries) {
      if (excess <= 0) break;
      if (entry.users > 0) continue;
      this.evict(key);
      excess--;
    }
    if (this.entries.size > 0 && !this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), this.idleMs).unref();
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleMs;
    for (const [key, entry] of this.entries) {
      if (entry.users === 0 && entry.lastUsed < cutoff) this.evict(key);
    }
    if (this.entries.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
