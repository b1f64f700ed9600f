import Database from 'better-sqlite3';
import { join } from 'node:path';

/**
 * One process at a time may change a store: the server, or an offline
 * command such as gc. The lock is an exclusive SQLite lock on
 * <root>/contentd.lock, so the operating system drops it when its holder
 * exits, even by a crash, and no stale lock file ever needs clearing.
 * Read-only commands (ls, du, info) do not take it.
 */
export class RootLockedError extends Error {
  constructor(readonly root: string) {
    super(`the store at ${root} is in use by another contentd process (a running server?); stop it first or use a read-only command`);
  }
}

export interface RootLock {
  release(): void;
}

export function lockRoot(root: string): RootLock {
  const db = new Database(join(root, 'contentd.lock'));
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    // Nothing is stored, so nothing needs a journal file next to the lock.
    db.pragma('journal_mode = OFF');
    // locking_mode keeps the exclusive lock taken here until the connection closes.
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') throw new RootLockedError(root);
    throw e;
  }
  return { release: () => db.close() };
}

/** Like lockRoot, but waits for the holder to finish; onBusy is called once if it has to wait. */
export async function waitForRootLock(root: string, onBusy: () => void, pollMs = 250): Promise<RootLock> {
  for (let waited = false; ; waited = true) {
    try {
      return lockRoot(root);
    } catch (e) {
      if (!(e instanceof RootLockedError)) throw e;
      if (!waited) onBusy();
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
