import { nowNs } from './clock';
import { validateDigest } from './digest';
import type { Store } from './store';

/**
 * Bulk import of blobs that already exist as files (containerd's local
 * content store, when swapping it for this one) into the global namespace
 * '', where containerd keeps what it stores through its proxy plugin: it
 * sends no namespace header. Runs on a store opened by openStore(), which
 * holds the root's lock, so no server changes the store meanwhile.
 */

/** present: nothing to do; reused: bytes already stored (another namespace), row added; linked/copied: new blob. */
export type ImportOutcome = 'present' | 'reused' | 'linked' | 'copied';

const GLOBAL = '';

/** True when the global namespace already has the blob: a re-run skips it without reading a byte. */
export function hasGlobalBlob(store: Store, digest: string): boolean {
  return store.db.getContent(GLOBAL, validateDigest(digest)) !== undefined;
}

/**
 * Adds the blob digest (size bytes) to the global namespace from the file at
 * path, which the caller has verified holds exactly that blob. Bytes the
 * store already has are not imported again. File first, row second, as a
 * commit does: a crash in between leaves a blob without a row, which start-up
 * reconciliation removes.
 */
export async function importVerifiedFile(store: Store, path: string, digest: string, size: number, options: { link: boolean }): Promise<ImportOutcome> {
  validateDigest(digest);
  if (hasGlobalBlob(store, digest)) return 'present';
  const at = nowNs();
  if (store.db.getBlob(digest)) {
    store.db.insertContent(GLOBAL, digest, at, {});
    return 'reused';
  }
  const how = await store.backend.importFile(path, digest, options);
  try {
    store.db.transaction(() => {
      store.db.insertBlob(digest, size, at);
      store.db.insertContent(GLOBAL, digest, at, {});
    });
  } catch (e) {
    await store.backend.deleteBlob(digest).catch(() => undefined);
    throw e;
  }
  store.observer.blobCommitted(size);
  return how;
}
