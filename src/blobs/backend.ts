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
  /** Streams the staged bytes, to rebuild a hash after a restart. */
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
   * Makes an ingest's staged bytes the blob for digest, durably and
   * atomically: readers see the whole blob or nothing.
   */
  publish(id: string, digest: string): Promise<void>;
  openBlob(digest: string): Promise<BlobReader>;
  blobSize(digest: string): Promise<number | undefined>;
  deleteBlob(digest: string): Promise<void>;
  listBlobs(): AsyncIterable<string>;
  close(): Promise<void>;
}
