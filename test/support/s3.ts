import {
  CreateBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { cephAvailable, type CephCluster } from './ceph';

/**
 * S3 helpers for tests of the s3 blob backend against the Ceph cluster of
 * test/support/ceph.ts: the server's configuration, and a client to look at
 * the bucket behind the server's back.
 */

/** Why S3 tests cannot run here; in CI (CI=true) a missing Ceph is a failure, never a skip. */
export function s3Skip(): string | false {
  if (cephAvailable()) return false;
  const reason = 'Ceph is not installed (ceph-mon, ceph-osd, radosgw, ceph-common)';
  if (process.env.CI === 'true') throw new Error(`${reason}: required when CI=true`);
  return `S3 tests skipped: ${reason}`;
}

/** A client as the server's backend is configured: path-style, no flexible checksums (radosgw 16). */
export function s3Client(ceph: CephCluster): S3Client {
  return new S3Client({
    endpoint: ceph.endpoint,
    region: ceph.region,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates a bucket with a fresh name and returns the name. */
export async function newBucket(client: S3Client): Promise<string> {
  const bucket = `contentd-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

export interface S3ServerOptions {
  bucket: string;
  prefix?: string;
  cacheMaxBytes?: number;
  cacheDir?: string;
}

/** The [blobs] section of a server configuration using the cluster. */
export function s3ServerConfig(ceph: CephCluster, options: S3ServerOptions): string {
  const lines = [
    '[blobs]',
    'backend = "s3"',
    '[blobs.s3]',
    `endpoint = "${ceph.endpoint}"`,
    `region = "${ceph.region}"`,
    `bucket = "${options.bucket}"`,
    `prefix = "${options.prefix ?? ''}"`,
    'force_path_style = true',
    `access_key_id = "${ceph.accessKeyId}"`,
    `secret_access_key = "${ceph.secretAccessKey}"`,
  ];
  if (options.cacheMaxBytes !== undefined) lines.push(`cache_max_bytes = ${options.cacheMaxBytes}`);
  if (options.cacheDir !== undefined) lines.push(`cache_dir = "${options.cacheDir}"`);
  return `${lines.join('\n')}\n`;
}

/** Every key in the bucket under prefix, with its size. */
export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<Map<string, number>> {
  const keys = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) keys.set(object.Key!, object.Size ?? 0);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Keys of the multipart uploads in progress in the bucket. */
export async function listUploads(client: S3Client, bucket: string): Promise<string[]> {
  const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (page.Uploads ?? []).map((upload) => upload.Key!);
}

/** Size of an object, undefined when there is none. */
export async function objectSize(client: S3Client, bucket: string, key: string): Promise<number | undefined> {
  try {
    return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
  } catch (e) {
    if (e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404) return undefined;
    throw e;
  }
}

/** Where the s3 backend keeps a blob. */
export function blobKey(digest: string, prefix = ''): string {
  const [algorithm, hex] = digest.split(':');
  return `${prefix}blobs/${algorithm}/${hex}`;
}
