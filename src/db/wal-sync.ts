import { closeSync, fdatasync, openSync } from 'node:fs';
import { promisify } from 'node:util';

const datasync = promisify(fdatasync);

/**
 * Group commit for SQLite in WAL mode. A transaction committed with
 * synchronous=NORMAL is in the WAL file but not yet on disk; fsyncing the WAL
 * makes it (and every transaction before it) durable, exactly what
 * synchronous=FULL does inside the commit. Done here, off the event loop and
 * shared: one fsync covers all commits made before it started, so concurrent
 * small commits cost one disk flush, and nothing else waits meanwhile.
 */
export class WalSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  /** Kept open: SQLite truncates and rewrites the WAL in place while a connection is open, never replaces it. */
  private fd: number | undefined;

  constructor(private readonly walPath: string) {}

  /** Resolves once everything committed before the call is on disk. */
  sync(): Promise<void> {
    if (!this.running) {
      const run = this.flush().finally(() => {
        if (this.running === run) this.running = undefined;
      });
      this.running = run;
      return run;
    }
    // The flush in progress may have started before our commit: join (or queue) the one after it.
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.sync();
      });
    return this.next;
  }

  /** Closes the WAL's descriptor; call after the last sync. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** The WAL's descriptor, opened now when there is a WAL (the server opens it at start-up, not with its first commit). */
  open(): number | undefined {
    try {
      this.fd ??= openSync(this.walPath, 'r');
    } catch (e) {
      // No WAL: everything was checkpointed into the database file, which SQLite syncs when it checkpoints.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return this.fd;
  }

  private async flush(): Promise<void> {
    const fd = this.open();
    if (fd !== undefined) await datasync(fd);
  }
}
