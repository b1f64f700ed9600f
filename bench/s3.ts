import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cephAvailable, startCeph } from '../test/support/ceph';
import { newBucket, s3Client, s3ServerConfig } from '../test/support/s3';
import type { TestServer } from '../test/support/server';
import { MiB } from './data';
import { blobOf, ingest, readBlob, size, type Row, type RowContext } from './rows';
import type { Target } from './targets';

/**
 * The s3 target: contentd with its blobs in S3, on a private Ceph RGW started
 * for it (test/support/ceph.ts), and the rows that show what the local read
 * cache does: reads with the cache warm (the blob was committed through this
 * server, which caches it) and cold (cache directory deleted first, so every
 * byte comes from the bucket in 8 MiB ranged GETs with read-ahead).
 */

/** Cache directory of each running s3 target, for the cold rows. */
const cacheDirs = new WeakMap<Target, string>();

export async function startS3Target(startContentd: (config: string) => Promise<TestServer>): Promise<Target> {
  if (!cephAvailable()) throw new Error('the s3 target needs Ceph (ceph-mon, ceph-osd, radosgw, ceph-common); leave it out with --targets direct,containerd,proxy');
  const ceph = await startCeph();
  let server: TestServer;
  try {
    const client = s3Client(ceph);
    const bucket = await newBucket(client);
    client.destroy();
    server = await startContentd(s3ServerConfig(ceph, { bucket }));
  } catch (e) {
    await ceph.stop();
    throw e;
  }
  const target: Target = {
    name: 's3',
    address: server.address,
    storePid: server.process.pid!,
    stop: async () => {
      await server.destroy();
      await ceph.stop();
    },
  };
  cacheDirs.set(target, join(server.root, 's3-cache'));
  return target;
}

/** Empties the read cache of the target under the running server, as an operator may at any time. */
async function coldRead(ctx: RowContext, chunk: number) {
  await blobOf(ctx, 'big', ctx.sizes.bigBlob);
  await rm(cacheDirs.get(ctx.target)!, { recursive: true, force: true });
  return readBlob(ctx, 'big', ctx.sizes.bigBlob, chunk);
}

export const S3_ROWS: readonly Row[] = [
  {
    id: 's3-ingest',
    title: (s) => `s3: ingest ${size(s.bigBlob)}, 1 MiB writes`,
    unit: 'MiB/s',
    targets: ['s3'],
    goals: {},
    measure: (ctx) => ingest(ctx, 'big', ctx.sizes.bigBlob),
  },
  {
    id: 's3-read-1m-warm',
    title: (s) => `s3: read ${size(s.bigBlob)}, 1 MiB ReadAt, warm cache`,
    unit: 'MiB/s',
    targets: ['s3'],
    goals: {},
    measure: (ctx) => readBlob(ctx, 'big', ctx.sizes.bigBlob, MiB),
  },
  {
    id: 's3-read-32k-warm',
    title: (s) => `s3: read ${size(s.bigBlob)}, 32 KiB ReadAt, warm cache`,
    unit: 'MiB/s',
    targets: ['s3'],
    goals: {},
    measure: (ctx) => readBlob(ctx, 'big', ctx.sizes.bigBlob, 32 * 1024),
  },
  {
    id: 's3-read-1m-cold',
    title: (s) => `s3: read ${size(s.bigBlob)}, 1 MiB ReadAt, cold cache`,
    unit: 'MiB/s',
    targets: ['s3'],
    goals: {},
    measure: (ctx) => coldRead(ctx, MiB),
  },
  {
    id: 's3-read-32k-cold',
    title: (s) => `s3: read ${size(s.bigBlob)}, 32 KiB ReadAt, cold cache`,
    unit: 'MiB/s',
    targets: ['s3'],
    goals: {},
    measure: (ctx) => coldRead(ctx, 32 * 1024),
  },
];
