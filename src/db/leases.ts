import type Database from 'better-sqlite3';
import type { Labels } from '../store/types';

/**
 * Lease tables, in the metadata database. Leases are namespaced like
 * containerd's: (namespace, id) with labels, holding resources by type
 * ('content' digests, 'ingests' refs, 'snapshots/<snapshotter>' keys, kept
 * for containerd clients though this store has no snapshots).
 * leased_ingests records the ingests opened under a lease: those never expire
 * by age and live only as long as a lease holds them, as in containerd.
 */

export interface LeaseRow {
  namespace: string;
  id: string;
  createdAt: bigint;
  labels: Labels;
}

export interface ResourceRow {
  namespace: string;
  lease: string;
  type: string;
  id: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS leases (
  namespace TEXT NOT NULL,
  id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease_resources (
  namespace TEXT NOT NULL,
  lease TEXT NOT NULL,
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY (namespace, lease, type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leased_ingests (
  namespace TEXT NOT NULL,
  ref TEXT NOT NULL,
  PRIMARY KEY (namespace, ref)
) WITHOUT ROWID;
`;

interface RawLease {
  namespace: string;
  id: string;
  created_at: bigint;
  labels: string;
}

const toLease = (row: RawLease): LeaseRow => ({
  namespace: row.namespace,
  id: row.id,
  createdAt: row.created_at,
  labels: JSON.parse(row.labels) as Labels,
});

export class LeaseDB {
  private readonly stmts;

  constructor(db: Database.Database) {
    if (!db.readonly) db.exec(SCHEMA);
    const big = <T extends Database.Statement>(s: T): T => s.safeIntegers(true) as T;
    this.stmts = {
      get: big(db.prepare('SELECT * FROM leases WHERE namespace = ? AND id = ?')),
      list: big(db.prepare('SELECT * FROM leases WHERE namespace = ? ORDER BY id')),
      all: big(db.prepare("SELECT * FROM leases WHERE namespace != '' ORDER BY namespace, id")),
      insert: db.prepare('INSERT INTO leases (namespace, id, created_at, labels) VALUES (?, ?, ?, ?)'),
      delete: db.prepare('DELETE FROM leases WHERE namespace = ? AND id = ?'),
      deleteResources: db.prepare('DELETE FROM lease_resources WHERE namespace = ? AND lease = ?'),
      addResource: db.prepare('INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)'),
      deleteResource: db.prepare('DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?'),
      listResources: db.prepare('SELECT * FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id'),
      allResources: db.prepare("SELECT * FROM lease_resources WHERE namespace != ''"),
      markLeased: db.prepare('INSERT OR IGNORE INTO leased_ingests (namespace, ref) VALUES (?, ?)'),
      unmarkLeased: db.prepare('DELETE FROM leased_ingests WHERE namespace = ? AND ref = ?'),
      allLeased: db.prepare("SELECT namespace, ref FROM leased_ingests WHERE namespace != ''"),
    };
  }

  get(namespace: string, id: string): LeaseRow | undefined {
    const row = this.stmts.get.get(namespace, id) as RawLease | undefined;
    return row && toLease(row);
  }

  list(namespace: string): LeaseRow[] {
    return (this.stmts.list.all(namespace) as RawLease[]).map(toLease);
  }

  /** Every lease of every namespace but the global one. */
  all(): LeaseRow[] {
    return (this.stmts.all.all() as RawLease[]).map(toLease);
  }

  insert(lease: LeaseRow): void {
    this.stmts.insert.run(lease.namespace, lease.id, lease.createdAt, JSON.stringify(lease.labels));
  }

  /** Removes a lease and what it holds; false when there was no such lease. */
  delete(namespace: string, id: string): boolean {
    this.stmts.deleteResources.run(namespace, id);
    return this.stmts.delete.run(namespace, id).changes > 0;
  }

  addResource(resource: ResourceRow): void {
    this.stmts.addResource.run(resource.namespace, resource.lease, resource.type, resource.id);
  }

  deleteResource(resource: ResourceRow): void {
    this.stmts.deleteResource.run(resource.namespace, resource.lease, resource.type, resource.id);
  }

  listResources(namespace: string, lease: string): ResourceRow[] {
    return this.stmts.listResources.all(namespace, lease) as ResourceRow[];
  }

  allResources(): ResourceRow[] {
    return this.stmts.allResources.all() as ResourceRow[];
  }

  setIngestLeased(namespace: string, ref: string, leased: boolean): void {
    if (leased) this.stmts.markLeased.run(namespace, ref);
    else this.stmts.unmarkLeased.run(namespace, ref);
  }

  /** "namespace\0ref" of every ingest opened under a lease. */
  leasedIngests(): Set<string> {
    return new Set((this.stmts.allLeased.all() as Array<{ namespace: string; ref: string }>).map((r) => `${r.namespace}\u0000${r.ref}`));
  }
}
