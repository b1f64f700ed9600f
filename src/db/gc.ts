import type Database from 'better-sqlite3';
import type { Labels } from '../store/types';

/**
 * What the garbage collector reads in one pass. Its graph covers the
 * namespaces of direct clients only: rows of the global namespace ('', the
 * requests without a namespace that containerd sends as a proxy) are never
 * candidates. Only one collector runs per root: the server's, or that of
 * `contentd gc` run offline, both under the root lock (src/db/root-lock.ts).
 */

export interface ContentNode {
  namespace: string;
  digest: string;
  labels: Labels;
}

export interface BlobNode {
  digest: string;
  size: number;
}

export class GcDB {
  private readonly stmts;

  constructor(db: Database.Database) {
    const big = <T extends Database.Statement>(s: T): T => s.safeIntegers(true) as T;
    this.stmts = {
      content: db.prepare("SELECT namespace, digest, labels FROM content WHERE namespace != ''"),
      globalDigests: db.prepare("SELECT digest FROM content WHERE namespace = ''").pluck(),
      blobs: big(db.prepare('SELECT digest, size FROM blobs')),
    };
  }

  /** Content rows of every namespace but the global one, with their labels. */
  namespacedContent(): ContentNode[] {
    return (this.stmts.content.all() as Array<{ namespace: string; digest: string; labels: string }>).map((r) => ({
      namespace: r.namespace,
      digest: r.digest,
      labels: JSON.parse(r.labels) as Labels,
    }));
  }

  /** Digests the global namespace references: never collected. */
  globalDigests(): Set<string> {
    return new Set(this.stmts.globalDigests.all() as string[]);
  }

  blobs(): BlobNode[] {
    return (this.stmts.blobs.all() as Array<{ digest: string; size: bigint }>).map((r) => ({ digest: r.digest, size: Number(r.size) }));
  }
}
