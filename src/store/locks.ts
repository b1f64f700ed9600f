import { unavailable } from './errors';

/**
 * Per-ref writer locks (containerd's "ref locked"). A holder whose client has
 * already half-closed its stream is about to release, so a new writer waits
 * for it briefly instead of failing: clients such as containerd's proxy open
 * the next stream without waiting for the previous one to finish on the server.
 * Even a holder not yet draining gets a short wait, as containerd's local
 * store retries a locked ref for up to ~1 s: with containerd in between, the
 * next stream may reach us before the previous one's half-close does.
 */
export class RefLocks {
  private readonly held = new Map<string, Holder>();

  constructor(
    private readonly drainWaitMs = 2000,
    private readonly busyWaitMs = 500,
  ) {}

  async acquire(key: string, displayRef: string): Promise<Holder> {
    for (;;) {
      const current = this.held.get(key);
      if (!current) {
        const holder = new Holder(() => {
          if (this.held.get(key) === holder) this.held.delete(key);
        });
        this.held.set(key, holder);
        return holder;
      }
      const started = Date.now();
      let released = await current.waitReleased(current.draining ? this.drainWaitMs : this.busyWaitMs);
      // The holder may have started draining while we waited.
      if (!released && current.draining) released = await current.waitReleased(this.drainWaitMs - (Date.now() - started));
      if (!released) throw unavailable(`ref ${displayRef} locked for write: unavailable`);
    }
  }

  isLocked(key: string): boolean {
    return this.held.has(key);
  }

  get size(): number {
    return this.held.size;
  }
}

export class Holder {
  /** Set when the lock holder will not take more work and is about to release. */
  draining = false;
  private released = false;
  private readonly waiters: Array<() => void> = [];

  private readonly releaseHooks: Array<() => void> = [];

  constructor(unlock: () => void) {
    this.releaseHooks.push(unlock);
  }

  onRelease(hook: () => void): void {
    this.releaseHooks.push(hook);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    for (const hook of this.releaseHooks) hook();
    for (const wake of this.waiters.splice(0)) wake();
  }

  waitReleased(ms: number): Promise<boolean> {
    if (this.released) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** Serialises async work per key (one digest's publish and delete, say). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const tail = new Promise<void>((resolve) => (done = resolve));
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
