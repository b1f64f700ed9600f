import type { Info } from '../store/types';

/**
 * Content rows recently read, so the Info before every ReaderAt and the
 * lookup in every Read (tens of thousands per pulled image) skip SQLite's
 * per-transaction file locking. Only the process that owns the database
 * (the root lock keeps others to reading) may use one: MetadataDB forgets a
 * row whenever it writes it, and fills the cache only outside transactions,
 * so a rolled-back write is never remembered (a row is only inserted where
 * none was, so inserts need not forget). Entries are shared: readers
 * must not modify them.
 */
export class ContentCache {
  // Keyed by digest, a space, then namespace: a validated digest has no space.
  private readonly rows = new Map<string, Info>();

  constructor(private readonly capacity: number) {}

  get(namespace: string, digest: string): Info | undefined {
    return this.rows.get(`${digest} ${namespace}`);
  }

  set(namespace: string, digest: string, info: Info): void {
    // Oldest first out: Map keeps insertion order.
    if (this.rows.size >= this.capacity) this.rows.delete(this.rows.keys().next().value as string);
    this.rows.set(`${digest} ${namespace}`, info);
  }

  forget(namespace: string, digest: string): void {
    this.rows.delete(`${digest} ${namespace}`);
  }

  clear(): void {
    this.rows.clear();
  }
}
