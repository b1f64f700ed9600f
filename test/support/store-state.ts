// Where blobs stand in a server root, read from its files and SQLite rows
// (not through the API), for tests that drive the store from outside.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { blobOnDisk, blobPath, contentRows, withMetadata } from './disk';

export interface StoredBlob {
  file: boolean;
  /** A row in the blobs table. */
  row: boolean;
  /** Namespaces with a content row for it ('' is containerd's, through the proxy). */
  namespaces: string[];
}

export const ABSENT: StoredBlob = { file: false, row: false, namespaces: [] };

export function stored(root: string, digest: string): StoredBlob {
  const row = withMetadata(root, (db) => db.prepare('SELECT 1 FROM blobs WHERE digest = ?').get(digest) !== undefined);
  return { file: existsSync(blobPath(root, digest)), row, namespaces: contentRows(root, digest).map((r) => r.namespace).sort() };
}

/** Asserts that root holds every blob (digest → a file with its bytes) for the global namespace, byte for byte. */
export async function assertHoldsBlobs(root: string, blobs: Map<string, string>): Promise<void> {
  for (const [digest, file] of blobs) {
    assert.deepEqual(stored(root, digest), { file: true, row: true, namespaces: [''] }, `${digest} in ${root}`);
    assert.ok(blobOnDisk(root, digest)!.equals(await readFile(file)), `${digest}: stored bytes differ from ${file}`);
  }
}
