import type { BlobBackend } from '../blobs/backend';
import type { MetadataDB } from '../db/metadata';
import { formatDigest, isDigest, newHash, parseDigest } from './digest';

/**
 * Consistency of a store: the bytes in a BlobBackend against the rows in
 * SQLite. Used offline by `contentd fsck` and, without re-hashing, by the
 * start-up reconciliation that clears what a crash left behind. A blob no
 * namespace references is not a problem: it waits for the garbage collector.
 */

export type ProblemKind =
  /** A blob's bytes do not match its digest or recorded size. */
  | 'corrupt'
  /** A blob row whose bytes are gone. */
  | 'missing'
  /** Bytes without a blob row: a commit that never completed. */
  | 'orphan-blob'
  /** Something in the blob store that is not named by a digest. */
  | 'foreign-entry'
  /** A namespace's content row whose blob row is gone. */
  | 'dangling-content'
  /** Staged bytes without an ingest row: an ingest that was committed or aborted. */
  | 'orphan-ingest'
  /** An ingest that starts from a blob that is gone. */
  | 'broken-ingest';

export interface Problem {
  kind: ProblemKind;
  /** A digest, a blob-store entry, an ingest ref or a staging id, depending on kind. */
  subject: string;
  /** For content rows and ingests. */
  namespace?: string;
  detail: string;
  /** What the repair did, when it ran. */
  repaired?: string;
}

/** What a crash can leave behind, safe to clear without a person looking. */
export const CRASH_LEFTOVERS: ReadonlySet<ProblemKind> = new Set<ProblemKind>(['orphan-blob', 'orphan-ingest', 'dangling-content', 'broken-ingest']);

export interface FsckProgress {
  blobsDone: number;
  blobsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface FsckOptions {
  /** 'digest' re-hashes every blob, 'size' compares sizes, 'none' only matches names to rows. */
  verify: 'digest' | 'size' | 'none';
  /** Which problems to fix; none when absent. */
  repair?: (problem: Problem) => boolean;
  onProgress?: (progress: FsckProgress) => void;
}

export interface FsckReport {
  blobs: number;
  bytes: number;
  ingests: number;
  problems: Problem[];
}

const HASH_CHUNK = 1 << 20;

/**
 * Checks, then repairs what options.repair selects. Read-only without repair,
 * and then safe beside a running server: findings a commit or delete in
 * flight could explain are checked again before they are reported. Corrupt
 * bytes are quarantined, never deleted.
 */
export async function checkStore(db: MetadataDB, backend: BlobBackend, options: FsckOptions): Promise<FsckReport> {
  const entries = new Set<string>();
  for await (const entry of backend.listBlobs()) entries.add(entry);
  const rows = db.allBlobs();
  const problems: Problem[] = [];

  const progress: FsckProgress = { blobsDone: 0, blobsTotal: rows.length, bytesDone: 0, bytesTotal: rows.reduce((sum, row) => sum + row.size, 0) };
  for (const row of rows) {
    const present = entries.delete(row.digest);
    if (!present) {
      // A commit in flight writes the file before the row: look again.
      if ((await backend.blobSize(row.digest)) === undefined) problems.push({ kind: 'missing', subject: row.digest, detail: `no bytes for ${referencedBy(db, row.digest)}` });
    } else if (options.verify !== 'none') {
      const damage = await inspect(backend, row.digest, row.size, options.verify, (bytes) => {
        progress.bytesDone += bytes;
        options.onProgress?.(progress);
      });
      if (damage) problems.push({ kind: 'corrupt', subject: row.digest, detail: `${damage}; ${referencedBy(db, row.digest)}` });
    }
    progress.blobsDone++;
    options.onProgress?.(progress);
  }
  for (const entry of entries) {
    if (!isDigest(entry)) problems.push({ kind: 'foreign-entry', subject: entry, detail: 'not named by a digest' });
    // Committed since the listing began, if it has a row now.
    else if (!db.getBlob(entry)) problems.push({ kind: 'orphan-blob', subject: entry, detail: 'bytes without a blob row (an interrupted commit)' });
  }
  for (const { namespace, digest } of db.danglingContent()) {
    problems.push({ kind: 'dangling-content', subject: digest, namespace, detail: 'content row without a blob row' });
  }

  // Blobs a repair will remove count as gone already, so one pass fixes their ingests too.
  const lost = new Set(problems.filter((p) => p.kind === 'corrupt' || p.kind === 'missing').map((p) => p.subject));
  const staged = await backend.listIngests();
  // Rows read after the listing: an ingest gets its row before its file.
  const ingests = db.allIngests();
  for (const row of ingests) {
    if (row.baseDigest && (lost.has(row.baseDigest) || !db.getBlob(row.baseDigest))) {
      problems.push({ kind: 'broken-ingest', subject: row.ref, namespace: row.namespace, detail: `based on ${row.baseDigest}, which is gone` });
    }
  }
  const ids = new Set(ingests.map((row) => row.id));
  for (const id of staged) {
    // A committed or aborted ingest loses its row just before its file: look again.
    if (!ids.has(id) && (await backend.ingestSize(id)) !== undefined) {
      problems.push({ kind: 'orphan-ingest', subject: id, detail: 'staged bytes without an ingest row' });
    }
  }

  if (options.repair) {
    for (const problem of problems) {
      if (options.repair(problem)) problem.repaired = await repair(db, backend, problem, ingests);
    }
  }
  return { blobs: rows.length, bytes: progress.bytesTotal, ingests: ingests.length, problems };
}

async function repair(db: MetadataDB, backend: BlobBackend, problem: Problem, ingests: ReturnType<MetadataDB['allIngests']>): Promise<string> {
  switch (problem.kind) {
    case 'corrupt': {
      // Bytes aside first: a crash before the rows go leaves a 'missing' finding, never a silent loss.
      const where = await backend.quarantine(problem.subject);
      db.forgetBlob(problem.subject);
      return `moved to ${where}; removed from every namespace`;
    }
    case 'foreign-entry':
      return `moved to ${await backend.quarantine(problem.subject)}`;
    case 'missing':
      db.forgetBlob(problem.subject);
      return 'removed from every namespace';
    case 'orphan-blob':
      await backend.deleteBlob(problem.subject);
      return 'deleted';
    case 'dangling-content':
      db.deleteContent(problem.namespace!, problem.subject);
      return 'row removed';
    case 'orphan-ingest':
      await backend.removeIngest(problem.subject);
      return 'deleted';
    case 'broken-ingest': {
      const row = ingests.find((r) => r.namespace === problem.namespace && r.ref === problem.subject);
      db.deleteIngest(problem.namespace!, problem.subject);
      if (row) await backend.removeIngest(row.id);
      return 'aborted';
    }
  }
}

/** Why a blob's bytes are wrong, or undefined when they are right. */
async function inspect(backend: BlobBackend, digest: string, size: number, verify: 'digest' | 'size', progressed: (bytes: number) => void): Promise<string | undefined> {
  const reader = await backend.openBlob(digest);
  try {
    if (reader.size !== size) return `size ${reader.size}, recorded ${size}`;
    if (verify === 'size') return undefined;
    const hash = newHash(parseDigest(digest).algorithm);
    const buffer = Buffer.allocUnsafe(HASH_CHUNK);
    for (let offset = 0; offset < reader.size; ) {
      const n = await reader.read(buffer, offset, Math.min(HASH_CHUNK, reader.size - offset));
      if (n === 0) return `ends at ${offset} of ${reader.size} bytes`;
      hash.update(buffer.subarray(0, n));
      offset += n;
      progressed(n);
    }
    const actual = formatDigest(hash, parseDigest(digest).algorithm);
    return actual === digest ? undefined : `bytes hash to ${actual}`;
  } finally {
    await reader.close();
  }
}

function referencedBy(db: MetadataDB, digest: string): string {
  const namespaces = db.namespacesOf(digest);
  return namespaces.length ? `referenced by namespaces ${namespaces.map((ns) => JSON.stringify(ns)).join(', ')}` : 'referenced by no namespace';
}
