import type { Logger } from 'winston';
import type { BlobBackend } from '../blobs/backend';
import type { MetadataDB } from '../db/metadata';

/**
 * Start-up clean-up after a crash: staged files whose ingest row is gone, and
 * blob files whose commit never reached SQLite (that commit was never
 * acknowledged). Rows without files are left for fsck to report.
 */
export async function reconcile(db: MetadataDB, backend: BlobBackend, logger: Logger): Promise<{ ingestFiles: number; blobFiles: number }> {
  const ingestIds = new Set(db.allIngests().map((row) => row.id));
  let ingestFiles = 0;
  for (const id of await backend.listIngests()) {
    if (!ingestIds.has(id)) {
      await backend.removeIngest(id);
      ingestFiles++;
    }
  }
  let blobFiles = 0;
  for await (const digest of backend.listBlobs()) {
    if (!db.getBlob(digest)) {
      await backend.deleteBlob(digest);
      blobFiles++;
    }
  }
  if (ingestFiles + blobFiles > 0) logger.warn('removed leftovers of interrupted work', { ingestFiles, blobFiles });
  return { ingestFiles, blobFiles };
}
