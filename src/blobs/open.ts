import type { Logger } from 'winston';
import type { Config } from '../config/config';
import type { BlobBackend } from './backend';
import { LocalBlobBackend } from './local';

export interface OpenBackendOptions {
  /** The caller holds the root's lock: the backend may clear what only a crashed run of it can have left. */
  exclusive: boolean;
  /** Reads must reach the stored bytes themselves, not a cache of them (fsck). */
  uncached?: boolean;
  logger?: Logger;
}

/** The blob backend [blobs] backend selects, ready for use. */
export async function openBlobBackend(config: Config, options: OpenBackendOptions): Promise<BlobBackend> {
  if (config.blobs.backend === 's3') {
    // Loaded only when used: the AWS SDK alone adds about 20 MiB to the resident set.
    const { S3BlobBackend } = await import('./s3.js');
    const backend = new S3BlobBackend(config.root, config.blobs.s3, { privateCache: options.uncached });
    await backend.init(options);
    return backend;
  }
  const backend = new LocalBlobBackend(config.root);
  await backend.init();
  return backend;
}
