import Database from 'better-sqlite3';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './process';

/**
 * What a local-backend server root holds on disk, read directly so tests
 * check real files rather than what the API claims.
 */

export function blobPath(root: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return join(root, 'blobs', algorithm!, hex!);
}

export function blobOnDisk(root: string, digest: string): Buffer | undefined {
  const path = blobPath(root, digest);
  return existsSync(path) ? readFileSync(path) : undefined;
}

/** Waits for the blob's file: a blob published ahead of its COMMIT appears after the last WRITE's answer. */
export async function blobFileAppears(root: string, digest: string): Promise<void> {
  await waitFor(async () => existsSync(blobPath(root, digest)) || undefined, 10_000, () => `the file of ${digest} to appear`);
}

/** Names of the files in <root>/ingest. */
export function ingestFiles(root: string): string[] {
  return readdirSync(join(root, 'ingest')).sort();
}

/** Permission bits of a file. */
export function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

export interface IngestRecord {
  namespace: string;
  ref: string;
  id: string;
}

/** Opens <root>/metadata.db read-only (WAL lets it read while the server writes). */
export function withMetadata<T>(root: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(root, 'metadata.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function ingestRows(root: string): IngestRecord[] {
  return withMetadata(root, (db) => db.prepare('SELECT namespace, ref, id FROM ingests ORDER BY ref').all() as IngestRecord[]);
}

export function ingestOf(root: string, ref: string, namespace = ''): IngestRecord | undefined {
  return ingestRows(root).find((row) => row.ref === ref && row.namespace === namespace);
}

export function contentRows(root: string, digest: string): Array<{ namespace: string; labels: string }> {
  return withMetadata(root, (db) => db.prepare('SELECT namespace, labels FROM content WHERE digest = ?').all(digest) as Array<{ namespace: string; labels: string }>);
}
