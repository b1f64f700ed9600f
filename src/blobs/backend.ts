import type { BlobReader } from '../store/types';

/**
 * Where the bytes live. The store above speaks only digests and ingest ids,
 * never paths, so a backend may keep blobs on a local disk or in an object
 * store. Ingest ids are opaque, filesystem-safe names chosen by the store.
 */

/** The staged bytes of one ingest, appended to in order. */
export interface IngestFile {
  readonly size: number;
  append(data: Buffer): Promise<void>;
  /** Drops everything written so far. */
  truncate(): Promise<void>;
  close(): Promise<void>;
}

export interface BlobBackend {
  /** Opens (creating if needed) the staging area of an ingest. */
  openIngest(id: string): Promise<IngestFile>;
  /** Bytes staged for an ingest, undefined when it has none. */
  ingestSize(id: string): Promise<number | undefined>;
  /** Streams the staged bytes, to rebuild a hash after a restart or to publish them; a chunk is valid only until the next is asked for. */
  readIngest(id: string): AsyncIterable<Buffer>;
  /** Replaces an ingest's staged bytes with a copy of a committed blob. */
  copyBlobToIngest(digest: string, id: string): Promise<void>;
  /**
   * Makes a local file, already verified to hold exactly the blob digest,
   * that blob, durably: shared with the file (hard link) when link is set and
   * the filesystem allows it, copied otherwise. The file is left in place.
   */
  importFile(path: string, digest: string, options: { link: boolean }): Promise<'linked' | 'copied'>;
  removeIngest(id: string): Promise<void>;
  listIngests(): Promise<string[]>;
  /**
   * Makes an ingest's staged bytes the blob for digest, durably (on stable
   * storage when it returns) and atomically: readers see the whole blob or
   * nothing. The staged bytes may stay in the ingest too: the store removes
   * the ingest once the commit is recorded, and deletes the blob again if
   * recording fails, so a failed commit can be retried. A blob the store has
   * no record of (left by such a failure) is replaced.
   */
  publish(id: string, digest: string): Promise<void>;
  openBlob(digest: string): Promise<BlobReader>;
  blobSize(digest: string): Promise<number | undefined>;
  deleteBlob(digest: string): Promise<void>;
  /**
   * Every stored blob entry, normally as a digest. An entry whose name is not
   * a valid digest (put there by something else) is listed by its name so
   * that fsck can report it; quarantine() accepts it.
   */
  listBlobs(): AsyncIterable<string>;
  /**
   * Takes a blob entry out of service without destroying it, for a person to
   * inspect; returns where it now is.
   */
  quarantine(entry: string): Promise<string>;
  close(): Promise<void>;
}
