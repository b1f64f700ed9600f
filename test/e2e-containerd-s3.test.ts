// Real containerd on contentd with blobs in S3 (a private Ceph RGW), end to
// end: import and unpack, export, push and pull through a registry into a
// second containerd whose contentd has a cache too small for the image, ctr
// content get and rm, and containerd's content test suite through containerd.
// What the store holds is checked in the bucket itself.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCeph, type CephCluster } from './support/ceph';
import { sha256 } from './support/client';
import { conformanceMissing } from './support/conformance';
import { assertImageComplete, containerdMissing, contentdSnippet, startContainerd, type Containerd } from './support/containerd';
import { blobPath } from './support/disk';
import { assertContentSuiteThroughContainerd, assertExportHolds, buildHarnessInBackground } from './support/e2e';
import { buildOciImage, type OciImage } from './support/oci-image';
import { waitFor } from './support/process';
import { registryMissing, startRegistry, type Registry } from './support/registry';
import { blobKey, newBucket, objectSize, s3Client, s3ServerConfig, s3Skip } from './support/s3';
import { startTestServer, type TestServer } from './support/server';

const missing = containerdMissing() ?? registryMissing() ?? conformanceMissing();
if (missing && process.env.CI === 'true') throw new Error(`e2e-containerd-s3: ${missing} (required when CI=true)`);
const skip = (missing ? `containerd e2e (s3) skipped: ${missing}` : false) || s3Skip();

const NS = 'e2e-s3';
const MiB = 1 << 20;

describe('containerd on contentd with blobs in S3, end to end', { skip, timeout: 15 * 60_000 }, () => {
  let work = '';
  let ceph: CephCluster;
  let s3: S3Client;
  let bucket = '';
  let server: TestServer;
  let containerd: Containerd;
  let image: OciImage;
  let registry: Registry | undefined;
  let harness: Promise<string>;

  /** Asserts that the bucket holds each blob under prefix, byte for byte, and that the server root has no local blob file. */
  async function assertInBucket(prefix: string, root: string, blobs: Map<string, string>): Promise<void> {
    for (const [digest, file] of blobs) {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: blobKey(digest, prefix) }));
      const stored = Buffer.from(await res.Body!.transformToByteArray());
      assert.ok(stored.equals(await readFile(file)), `${digest}: object differs from ${file}`);
      assert.equal(existsSync(blobPath(root, digest)), false, `${digest}: a local blob file exists`);
    }
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'contentd-e2e-s3-'));
    harness = buildHarnessInBackground(work);
    ceph = await startCeph();
    s3 = s3Client(ceph);
    bucket = await newBucket(s3);
    server = await startTestServer({ config: s3ServerConfig(ceph, { bucket, prefix: 'host-a/' }) });
    containerd = await startContainerd({ dir: join(work, 'containerd'), contentProxy: await contentdSnippet(server) });
    image = await buildOciImage({ dir: join(work, 'image'), layers: 3, layerSize: 12 * MiB });
  });

  after(async () => {
    await containerd?.stop();
    await registry?.stop();
    await server?.destroy();
    s3?.destroy();
    await ceph?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('ctr images import unpacks an OCI archive from objects in the bucket; export gives back the same blobs', async () => {
    await containerd.ctrOk(['images', 'import', '--snapshotter', containerd.snapshotter, image.archive], { namespace: NS });
    await assertImageComplete(containerd, image.name, NS);
    await assertInBucket('host-a/', server.root, image.blobs);

    await assertExportHolds(containerd, image.name, NS, join(work, 'exported.tar'), image.blobs);
  });

  test('push to a registry, pull and unpack into a second containerd whose contentd cache is smaller than a layer', async () => {
    registry = await startRegistry(join(work, 'registry'));
    const pushed = `${registry.host}/contentd/e2e-s3:latest`;
    await containerd.ctrOk(['images', 'tag', image.name, pushed], { namespace: NS });
    await containerd.ctrOk(['images', 'push', '--plain-http', pushed], { namespace: NS });

    // A prefix of its own in the same bucket; a 16 MiB cache cannot keep a 12 MiB layer from its commit to its unpack.
    const server2 = await startTestServer({ config: s3ServerConfig(ceph, { bucket, prefix: 'host-b/', cacheMaxBytes: 16 * MiB }) });
    const containerd2 = await startContainerd({ dir: join(work, 'containerd2'), contentProxy: await contentdSnippet(server2) });
    try {
      await containerd2.ctrOk(['images', 'pull', '--plain-http', '--snapshotter', containerd2.snapshotter, pushed], { namespace: NS });
      await assertImageComplete(containerd2, pushed, NS);
      await assertInBucket('host-b/', server2.root, image.blobs);
    } finally {
      await containerd2.stop();
      await server2.destroy();
    }
    await assertInBucket('host-a/', server.root, image.blobs);
  });

  test('ctr content ingest, get and rm: the object appears, reads back, and goes with containerd\'s collection', async () => {
    const data = randomBytes(10 * MiB);
    const digest = sha256(data);
    await containerd.ctrOk(['content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, 'e2e-s3-ingest'], { namespace: NS, input: data });
    assert.equal(await objectSize(s3, bucket, blobKey(digest, 'host-a/')), data.length);
    const got = await containerd.ctr(['content', 'get', digest], { namespace: NS });
    assert.equal(got.code, 0, got.stderr);
    assert.ok(got.stdoutBytes.equals(data), 'ctr content get returned other bytes');

    await containerd.ctrOk(['content', 'rm', digest], { namespace: NS });
    await waitFor(async () => ((await objectSize(s3, bucket, blobKey(digest, 'host-a/'))) === undefined ? true : undefined), 60_000, () => 'object still in the bucket');
  });

  test("containerd's content test suite through containerd (mode containerd): content + cross-namespace shared", { timeout: 8 * 60_000 }, async () => {
    await assertContentSuiteThroughContainerd(await harness, containerd, work, () => `--- contentd log (tail) ---\n${server.output().slice(-4000)}`);
  });
});
