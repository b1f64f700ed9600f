// Whether a local-backend root is consistent, read from its files and SQLite
// rows directly: what a crash, a full disk or hostile clients must never break.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from './client';
import { withMetadata } from './disk';

/** What a root may hold at its top level (the lock's journal lives as long as its holder, a crashed one included). */
const ROOT_ENTRIES = new Set(['blobs', 'ingest', 'metadata.db', 'metadata.db-wal', 'metadata.db-shm', 'contentd.sock', 'contentd.lock', 'contentd.lock-journal', 'config.toml']);

export interface RootSummary {
  blobs: number;
  ingestRows: number;
  ingestFiles: number;
}

/**
 * Asserts that every blob file has a row and hashes to its name, every blob
 * row has its file at the recorded size, every content row its blob, every
 * staged file its ingest row, and that nothing else (temp files, strays) is
 * there. Call it while nothing writes, e.g. right after a (re)start.
 * Blob files are immutable once named: those in hashed were verified before
 * and are not read again; the ones verified now are added.
 */
export function assertConsistentRoot(root: string, hashed = new Set<string>()): RootSummary {
  const stray = readdirSync(root).filter((name) => !ROOT_ENTRIES.has(name));
  assert.deepEqual(stray, [], `unexpected entries in ${root}`);
  assert.deepEqual(readdirSync(join(root, 'blobs')), ['sha256'], 'blobs/ holds only the sha256 directory');
  return withMetadata(root, (db) => {
    const rows = new Map((db.prepare('SELECT digest, size FROM blobs').all() as Array<{ digest: string; size: number }>).map((r) => [r.digest, r.size]));
    const files = readdirSync(join(root, 'blobs', 'sha256'));
    for (const name of files) {
      const digest = `sha256:${name}`;
      assert.ok(rows.has(digest), `blob file without a row: ${digest}`);
      const path = join(root, 'blobs', 'sha256', name);
      assert.equal(statSync(path).size, rows.get(digest), `${digest}: file size differs from its row`);
      if (hashed.has(digest)) continue;
      assert.equal(sha256(readFileSync(path)), digest, `${digest}: bytes do not match the digest`);
      hashed.add(digest);
    }
    assert.equal(files.length, rows.size, 'every blob row has its file');
    const dangling = db.prepare('SELECT count(*) FROM content c WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = c.digest)').pluck().get();
    assert.equal(dangling, 0, 'content rows without a blob');
    const ids = new Set(db.prepare('SELECT id FROM ingests').pluck().all() as string[]);
    const staged = readdirSync(join(root, 'ingest'));
    for (const id of staged) {
      assert.ok(ids.has(id), `staged file without an ingest row: ${id}`);
      assert.ok(statSync(join(root, 'ingest', id)).isFile(), `${id} is a file`);
    }
    return { blobs: rows.size, ingestRows: ids.size, ingestFiles: staged.length };
  });
}
