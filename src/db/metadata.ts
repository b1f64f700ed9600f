import Database from 'better-sqlite3';
import type { Info, Labels } from '../store/types';
import { ContentCache } from './content-cache';
import { WalSync } from './wal-sync';

/**
 * SQLite holds everything but the bytes: which blobs exist, which namespace
 * sees which blob with what labels, and ingest state. WAL lets CLI commands
 * read while the server writes; synchronous=FULL makes an acknowledged commit
 * durable. The hot paths use lazyTransaction() + sync() instead: the same
 * durability with the flush off the event loop and shared by concurrent commits.
 */

export interface BlobRow {
  digest: string;
  size: number;
  createdAt: bigint;
}

export interface IngestRow {
  namespace: string;
  ref: string;
  id: string;
  total: number;
  expected: string;
  /** Set when the ingest starts as a copy of a blob another namespace committed (shared policy). */
  baseDigest: string | null;
  startedAt: bigint;
  updatedAt: bigint;
}

interface RawContentRow {
  digest: string;
  size: bigint;
  created_at: bigint;
  updated_at: bigint;
  labels: string;
}

interface RawIngestRow {
  namespace: string;
  ref: string;
  id: string;
  total: bigint;
  expected: string;
  base_digest: string | null;
  started_at: bigint;
  updated_at: bigint;
}

/** Content rows kept in memory: an image's blobs many times over, a few MiB at most. */
const CONTENT_CACHE_SIZE = 8192;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS content (
  namespace TEXT NOT NULL,
  digest TEXT NOT NULL REFERENCES blobs(digest),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS content_by_digest ON content(digest);
CREATE TABLE IF NOT EXISTS ingests (
  namespace TEXT NOT NULL,
  ref TEXT NOT NULL,
  id TEXT NOT NULL UNIQUE,
  total INTEGER NOT NULL,
  expected TEXT NOT NULL,
  base_digest TEXT,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, ref)
) WITHOUT ROWID;
`;

function toInfo(row: RawContentRow): Info {
  return {
    digest: row.digest,
    size: Number(row.size),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    labels: JSON.parse(row.labels) as Labels,
  };
}

interface RawBlobRow {
  digest: string;
  size: bigint;
  created_at: bigint;
}

function toBlob(row: RawBlobRow): BlobRow {
  return { digest: row.digest, size: Number(row.size), createdAt: row.created_at };
}

function toIngest(row: RawIngestRow): IngestRow {
  return {
    namespace: row.namespace,
    ref: row.ref,
    id: row.id,
    total: Number(row.total),
    expected: row.expected,
    baseDigest: row.base_digest,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
  };
}

export class MetadataDB {
  readonly db: Database.Database;
  private readonly stmts;
  private readonly wal: WalSync;
  private readonly syncMode: { lazy: Database.Statement; full: Database.Statement } | undefined;
  /** Absent when another process may write the database (a read-only open beside a running server). */
  private readonly cache: ContentCache | undefined;

  constructor(path: string, options: { readonly?: boolean } = {}) {
    this.wal = new WalSync(`${path}-wal`);
    this.db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
    this.db.pragma('busy_timeout = 5000');
    if (!options.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA);
      this.wal.open();
    }
    this.cache = options.readonly ? undefined : new ContentCache(CONTENT_CACHE_SIZE);
    this.syncMode = options.readonly ? undefined : { lazy: this.db.prepare('PRAGMA synchronous = NORMAL'), full: this.db.prepare('PRAGMA synchronous = FULL') };
    const db = this.db;
    const big = <T extends Database.Statement>(s: T): T => s.safeIntegers(true) as T;
    this.stmts = {
      getContent: big(db.prepare('SELECT c.digest, b.size, c.created_at, c.updated_at, c.labels FROM content c JOIN blobs b USING (digest) WHERE c.namespace = ? AND c.digest = ?')),
      listContent: big(db.prepare('SELECT c.digest, b.size, c.created_at, c.updated_at, c.labels FROM content c JOIN blobs b USING (digest) WHERE c.namespace = ? ORDER BY c.digest')),
      insertContent: db.prepare('INSERT INTO content (namespace, digest, created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?)'),
      updateLabels: db.prepare('UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?'),
      deleteContent: db.prepare('DELETE FROM content WHERE namespace = ? AND digest = ?'),
      countContentRefs: db.prepare('SELECT count(*) AS n FROM content WHERE digest = ?').pluck(),
      getBlob: big(db.prepare('SELECT digest, size, created_at FROM blobs WHERE digest = ?')),
      insertBlob: db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)'),
      deleteBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),
      getIngest: big(db.prepare('SELECT * FROM ingests WHERE namespace = ? AND ref = ?')),
      listIngests: big(db.prepare('SELECT * FROM ingests WHERE namespace = ? ORDER BY ref')),
      allIngests: big(db.prepare('SELECT * FROM ingests')),
      // For consistency checks (fsck, start-up reconciliation).
      allBlobs: big(db.prepare('SELECT digest, size, created_at FROM blobs ORDER BY digest')),
      danglingContent: db.prepare('SELECT namespace, digest FROM content c WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = c.digest)'),
      namespacesOf: db.prepare('SELECT namespace FROM content WHERE digest = ? ORDER BY namespace').pluck(),
      deleteAllContent: db.prepare('DELETE FROM content WHERE digest = ?'),
      insertIngest: db.prepare(
        'INSERT INTO ingests (namespace, ref, id, total, expected, base_digest, started_at, updated_at) VALUES (@namespace, @ref, @id, @total, @expected, @baseDigest, @startedAt, @updatedAt)',
      ),
      updateIngest: db.prepare(
        'UPDATE ingests SET total = @total, expected = @expected, base_digest = @baseDigest, updated_at = @updatedAt WHERE namespace = @namespace AND ref = @ref',
      ),
      deleteIngest: db.prepare('DELETE FROM ingests WHERE namespace = ? AND ref = ?'),
      blobTotals: db.prepare('SELECT count(*) AS count, coalesce(sum(size), 0) AS bytes FROM blobs'),
      namespaces: db.prepare('SELECT namespace FROM content UNION SELECT namespace FROM ingests ORDER BY namespace').pluck(),
      usage: db.prepare('SELECT c.namespace, count(*) AS count, sum(b.size) AS bytes FROM content c JOIN blobs b USING (digest) GROUP BY c.namespace ORDER BY c.namespace'),
      contentByDigest: big(db.prepare('SELECT c.namespace, c.digest, b.size, c.created_at, c.updated_at, c.labels FROM content c JOIN blobs b USING (digest) WHERE c.digest = ? ORDER BY c.namespace')),
    };
  }

  close(): void {
    this.db.close();
    this.wal.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /**
   * A transaction whose commit does not wait for the disk (synchronous=NORMAL
   * for it alone). Nothing it wrote survives power loss until sync(): for
   * state a crash may lose (as containerd's own ingests), or followed by
   * sync() before anything is acknowledged.
   */
  lazyTransaction<T>(fn: () => T): T {
    if (!this.syncMode) return this.transaction(fn);
    this.syncMode.lazy.run();
    try {
      return this.transaction(fn);
    } finally {
      this.syncMode.full.run();
    }
  }

  /** Makes every transaction committed so far durable; concurrent callers share one flush. */
  sync(): Promise<void> {
    return this.wal.sync();
  }

  /** The returned Info may be shared with other callers: do not modify it. */
  getContent(namespace: string, digest: string): Info | undefined {
    const cached = this.cache?.get(namespace, digest);
    if (cached) return cached;
    const row = this.stmts.getContent.get(namespace, digest) as RawContentRow | undefined;
    if (!row) return undefined;
    const info = toInfo(row);
    if (!this.db.inTransaction) this.cache?.set(namespace, digest, info);
    return info;
  }

  *listContent(namespace: string): Iterable<Info> {
    for (const row of this.stmts.listContent.iterate(namespace) as IterableIterator<RawContentRow>) yield toInfo(row);
  }

  insertContent(namespace: string, digest: string, at: bigint, labels: Labels): void {
    this.stmts.insertContent.run(namespace, digest, at, at, JSON.stringify(labels));
  }

  setLabels(namespace: string, digest: string, labels: Labels, at: bigint): void {
    this.cache?.forget(namespace, digest);
    this.stmts.updateLabels.run(JSON.stringify(labels), at, namespace, digest);
  }

  /** Removes a namespace's reference; returns how many namespaces still reference the blob. */
  deleteContent(namespace: string, digest: string): number {
    this.cache?.forget(namespace, digest);
    this.stmts.deleteContent.run(namespace, digest);
    return this.stmts.countContentRefs.get(digest) as number;
  }

  getBlob(digest: string): BlobRow | undefined {
    const row = this.stmts.getBlob.get(digest) as RawBlobRow | undefined;
    return row && toBlob(row);
  }

  insertBlob(digest: string, size: number, at: bigint): void {
    this.stmts.insertBlob.run(digest, size, at);
  }

  deleteBlob(digest: string): void {
    this.stmts.deleteBlob.run(digest);
  }

  getIngest(namespace: string, ref: string): IngestRow | undefined {
    const row = this.stmts.getIngest.get(namespace, ref) as RawIngestRow | undefined;
    return row && toIngest(row);
  }

  listIngests(namespace: string): IngestRow[] {
    return (this.stmts.listIngests.all(namespace) as RawIngestRow[]).map(toIngest);
  }

  allIngests(): IngestRow[] {
    return (this.stmts.allIngests.all() as RawIngestRow[]).map(toIngest);
  }

  allBlobs(): BlobRow[] {
    return (this.stmts.allBlobs.all() as RawBlobRow[]).map(toBlob);
  }

  /** Content rows whose blob row is missing. */
  danglingContent(): Array<{ namespace: string; digest: string }> {
    return this.stmts.danglingContent.all() as Array<{ namespace: string; digest: string }>;
  }

  namespacesOf(digest: string): string[] {
    return this.stmts.namespacesOf.all(digest) as string[];
  }

  /** Removes a blob and every namespace's reference to it. */
  forgetBlob(digest: string): void {
    // Rare (fsck, import): not worth finding the digest's rows.
    this.cache?.clear();
    this.transaction(() => {
      this.stmts.deleteAllContent.run(digest);
      this.stmts.deleteBlob.run(digest);
    });
  }

  insertIngest(row: IngestRow): void {
    this.stmts.insertIngest.run(row);
  }

  updateIngest(row: IngestRow): void {
    this.stmts.updateIngest.run(row);
  }

  deleteIngest(namespace: string, ref: string): void {
    this.stmts.deleteIngest.run(namespace, ref);
  }

  /** Blobs stored, each counted once however many namespaces reference it. */
  blobTotals(): { count: number; bytes: number } {
    return this.stmts.blobTotals.get() as { count: number; bytes: number };
  }

  /** Every namespace with content or ingests. */
  namespaces(): string[] {
    return this.stmts.namespaces.all() as string[];
  }

  /** Content referenced by each namespace; a blob shared by two namespaces counts in both. */
  usage(): Array<{ namespace: string; count: number; bytes: number }> {
    return this.stmts.usage.all() as Array<{ namespace: string; count: number; bytes: number }>;
  }

  /** One digest as each namespace that references it sees it. */
  contentByDigest(digest: string): Array<Info & { namespace: string }> {
    return (this.stmts.contentByDigest.all(digest) as Array<RawContentRow & { namespace: string }>).map((row) => ({ namespace: row.namespace, ...toInfo(row) }));
  }
}
