// The s3 blob backend against a real S3 implementation (a private Ceph RGW):
// a real server over a real socket, the bucket inspected behind its back.
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { startCeph, type CephCluster } from './support/ceph';
import { contentClient, info, read, rejectsWith, remove, sha256, status, WriteSession, writeBlob } from './support/client';
import { run } from './support/process';
import { blobKey, listKeys, listUploads, newBucket, objectSize, s3Client, s3ServerConfig, s3Skip, type S3ServerOptions } from './support/s3';
import { CLI, startTestServer, type TestServer } from './support/server';

const MiB = 1 << 20;
/** The backend's cache chunk (src/blobs/s3.ts CHUNK_SIZE). */
const CHUNK = 8 * MiB;

const skip = s3Skip();

/** Files under dir, recursively, with their sizes. */
function filesUnder(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      out.set(path, statSync(path).size);
    }
  }
  return out;
}

/** Reads a blob the way containerd's proxy does during unpack: one Read call per 32 KiB. */
async function readLikeContainerd(client: ReturnType<typeof contentClient>, digest: string, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < size; offset += 32 * 1024) parts.push((await read(client, digest, offset, Math.min(32 * 1024, size - offset))).data);
  return Buffer.concat(parts);
}

/** Runs `contentd serve` with config until it exits (it should fail to start); returns its exit code and stderr. */
async function serveFails(config: string): Promise<{ code: number | null; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'contentd-s3-config-'));
  try {
    await writeFile(join(dir, 'config.toml'), config);
    const res = await run(process.execPath, [CLI, '--root', dir, '--config', join(dir, 'config.toml'), 'serve'], { timeoutMs: 60_000 });
    return { code: res.code, stderr: res.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Peak resident memory of a process, in bytes (Linux). */
function peakRss(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

describe('s3 blob backend configuration', () => {
  test('backend = "s3" without a bucket, or with an unknown key, stops the server at start', async () => {
    const noBucket = await serveFails('[blobs]\nbackend = "s3"\n');
    assert.equal(noBucket.code, 1);
    assert.match(noBucket.stderr, /blobs\.s3\.bucket must be set/);
    const typo = await serveFails('[blobs]\nbackend = "s3"\n[blobs.s3]\nbuckett = "x"\n');
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /unknown configuration key blobs\.s3\.buckett/);
  });

  test('an endpoint nobody answers on stops the server at start with an object storage error', async () => {
    const res = await serveFails('[blobs]\nbackend = "s3"\n[blobs.s3]\nendpoint = "http://127.0.0.1:1"\nbucket = "b"\naccess_key_id = "k"\nsecret_access_key = "s"\n');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /object storage: bucket b/);
  });
});

describe('s3 blob backend (Ceph RGW)', { skip, timeout: 8 * 60_000 }, () => {
  let ceph: CephCluster;
  let s3: S3Client;
  const servers: TestServer[] = [];

  before(async () => {
    ceph = await startCeph();
    s3 = s3Client(ceph);
  });

  after(async () => {
    for (const server of servers) await server.destroy();
    s3?.destroy();
    await ceph?.stop();
  });

  async function serve(options: Partial<S3ServerOptions> = {}): Promise<{ server: TestServer; client: ReturnType<typeof contentClient>; bucket: string }> {
    const bucket = options.bucket ?? (await newBucket(s3));
    const server = await startTestServer({ config: s3ServerConfig(ceph, { ...options, bucket }) });
    servers.push(server);
    return { server, client: contentClient(server.address), bucket };
  }

  test('a committed blob is one object at its key, read back whole and by range; Delete removes object and cache', async () => {
    const { server, client, bucket } = await serve({ prefix: 'site-a/' });
    const big = randomBytes(20 * MiB + 12345);
    const small = randomBytes(3000);
    const bigDigest = sha256(big);
    const smallDigest = sha256(small);
    await writeBlob(client, 'big', big);
    await writeBlob(client, 'small', small);

    const keys = await listKeys(s3, bucket);
    assert.deepEqual(
      [...keys].sort(),
      [
        [blobKey(bigDigest, 'site-a/'), big.length],
        [blobKey(smallDigest, 'site-a/'), small.length],
      ].sort(),
    );
    assert.equal(existsSync(join(server.root, 'blobs', 'sha256', bigDigest.slice(7))), false, 'no local blob file');
    assert.equal((await info(client, bigDigest)).size, big.length);

    assert.ok((await read(client, bigDigest)).data.equals(big), 'whole read');
    // Across the first chunk boundary, and the tail.
    const from = CHUNK - 100;
    assert.ok((await read(client, bigDigest, from, 300)).data.equals(big.subarray(from, from + 300)));
    assert.ok((await read(client, bigDigest, big.length - 10)).data.equals(big.subarray(big.length - 10)));
    assert.ok((await read(client, smallDigest)).data.equals(small));

    const cacheGroup = join(server.root, 's3-cache', 'sha256', bigDigest.slice(7));
    assert.ok(existsSync(cacheGroup), 'cached after reading');
    await remove(client, bigDigest);
    assert.equal(await objectSize(s3, bucket, blobKey(bigDigest, 'site-a/')), undefined, 'object deleted');
    assert.equal(existsSync(cacheGroup), false, 'cache entry deleted');
    await rejectsWith(read(client, bigDigest), 'NOT_FOUND');
    assert.ok((await read(client, smallDigest)).data.equals(small), 'the other blob is untouched');
  });

  test('nothing is visible in the bucket before the commit, nor after a commit that fails verification', async () => {
    const { client, bucket } = await serve();
    const data = randomBytes(18 * MiB);
    const session = new WriteSession(client);
    await session.send({ action: WriteAction.STAT, ref: 'pending', total: data.length });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: data.subarray(0, 12 * MiB) });
    assert.deepEqual([...(await listKeys(s3, bucket)).keys()], [], 'no object while writing');
    assert.deepEqual(await listUploads(s3, bucket), [], 'no upload while writing');
    await session.send({ action: WriteAction.WRITE, offset: 12 * MiB, data: data.subarray(12 * MiB) });
    const wrong = sha256(Buffer.from('something else'));
    await rejectsWith(session.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: wrong }), 'FAILED_PRECONDITION');
    session.cancel();
    assert.deepEqual([...(await listKeys(s3, bucket)).keys()], [], 'no object after a failed commit');
    assert.deepEqual(await listUploads(s3, bucket), [], 'no upload left behind');

    // The ingest survives the failed commit and commits with the right digest.
    const retry = new WriteSession(client);
    const stat = await retry.send({ action: WriteAction.STAT, ref: 'pending', total: data.length });
    assert.equal(stat.offset, data.length);
    await retry.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) });
    await retry.close();
    assert.equal(await objectSize(s3, bucket, blobKey(sha256(data))), data.length);
  });

  test('an ingest interrupted by a crash resumes after the restart', async () => {
    const { server, client, bucket } = await serve();
    const data = randomBytes(10 * MiB);
    const session = new WriteSession(client);
    await session.send({ action: WriteAction.STAT, ref: 'resume-me', total: data.length, expected: sha256(data) });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: data.subarray(0, 6 * MiB) });
    await server.restart('SIGKILL');
    session.cancel();

    const again = contentClient(server.address);
    assert.equal((await status(again, 'resume-me')).offset, 6 * MiB);
    const resumed = new WriteSession(again);
    const stat = await resumed.send({ action: WriteAction.STAT, ref: 'resume-me', total: data.length, expected: sha256(data) });
    assert.equal(stat.offset, 6 * MiB);
    await resumed.send({ action: WriteAction.WRITE, offset: 6 * MiB, data: data.subarray(6 * MiB) });
    await resumed.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) });
    await resumed.close();
    assert.equal(await objectSize(s3, bucket, blobKey(sha256(data))), data.length);
    assert.ok((await read(again, sha256(data))).data.equals(data));
  });

  test('the read cache: warm after a commit, bounded by size, rebuilt after being deleted while serving', async () => {
    const limit = 4 * CHUNK;
    const { server, client } = await serve({ cacheMaxBytes: limit });
    const cacheDir = join(server.root, 's3-cache');
    const blobs = [randomBytes(2 * CHUNK + 5), randomBytes(2 * CHUNK + 7), randomBytes(CHUNK / 2)];
    for (const [i, data] of blobs.entries()) await writeBlob(client, `blob-${i}`, data);

    const cached = (data: Buffer): string[] => [...filesUnder(join(cacheDir, 'sha256', sha256(data).slice(7))).keys()];
    assert.equal(cached(blobs[2]!).length, 1, 'a blob that fits half the cache is cached by its commit');
    for (const data of blobs) assert.ok((await readLikeContainerd(client, sha256(data), data.length)).equals(data));
    const total = (): number => [...filesUnder(cacheDir).values()].reduce((a, b) => a + b, 0);
    assert.ok(total() <= limit, `cache holds ${total()} bytes, limit ${limit}`);
    assert.ok(total() > 0);

    await rm(cacheDir, { recursive: true, force: true });
    for (const data of blobs) assert.ok((await read(client, sha256(data))).data.equals(data), 'read after the cache was deleted');
    assert.ok(cached(blobs[0]!).length > 0, 'the cache is filled again');
    assert.ok(total() <= limit);

    // The index of a cache left by a previous run is rebuilt at start.
    await server.restart();
    const after = contentClient(server.address);
    for (const data of blobs) assert.ok((await read(after, sha256(data))).data.equals(data));
    assert.ok(total() <= limit);
  });

  test('a bucket that does not exist stops the server at start', async () => {
    const res = await serveFails(s3ServerConfig(ceph, { bucket: 'no-such-bucket' }));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /bucket no-such-bucket does not exist/);
  });

  test('multipart uploads abandoned by a crashed run are aborted at start; others in the bucket are left alone', async () => {
    const bucket = await newBucket(s3);
    const ours = blobKey(sha256(Buffer.from('x')), 'mine/');
    const foreign = 'elsewhere/object';
    const uploads: Array<{ key: string; id: string }> = [];
    for (const key of [ours, foreign]) {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1024) }));
      uploads.push({ key, id: UploadId! });
    }
    assert.deepEqual((await listUploads(s3, bucket)).sort(), [foreign, ours].sort());
    const { server } = await serve({ bucket, prefix: 'mine' });
    assert.deepEqual(await listUploads(s3, bucket), [foreign]);
    assert.match(server.output(), /aborted abandoned multipart uploads/);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: foreign, UploadId: uploads[1]!.id }));
  });

  test('fsck checks the objects themselves, not the cache: a deleted object is missing, an overwritten one corrupt and quarantined', async () => {
    const { server, client, bucket } = await serve();
    const [doomed, damaged, kept] = [randomBytes(5000), randomBytes(3 * MiB), randomBytes(6000)];
    for (const [i, data] of [doomed, damaged, kept].entries()) await writeBlob(client, `fsck-${i}`, data);
    await server.stop();
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: blobKey(sha256(doomed)) }));
    // Same size, other bytes; the server's cache still holds the good copy from the commit.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: blobKey(sha256(damaged)), Body: randomBytes(damaged.length) }));
    const fsck = async (...args: string[]) => {
      const res = await run(process.execPath, [CLI, '--root', server.root, '--config', join(server.root, 'config.toml'), 'fsck', '--json', ...args], { timeoutMs: 120_000 });
      return { code: res.code, stderr: res.stderr, problems: (JSON.parse(res.stdout) as { problems: Array<{ kind: string; subject: string; repaired?: string }> }).problems };
    };

    const check = await fsck();
    assert.equal(check.code, 4, check.stderr);
    assert.deepEqual(check.problems.map((p) => [p.kind, p.subject]).sort(), [
      ['corrupt', sha256(damaged)],
      ['missing', sha256(doomed)],
    ]);

    const repair = await fsck('--repair');
    assert.equal(repair.code, 1, repair.stderr);
    const quarantined = repair.problems.find((p) => p.kind === 'corrupt')?.repaired ?? '';
    const match = new RegExp(`^moved to s3://${bucket}/(quarantine/sha256-${sha256(damaged).slice(7)}\\.\\d+);`).exec(quarantined);
    assert.ok(match, quarantined);
    assert.equal(await objectSize(s3, bucket, match[1]!), damaged.length, 'the damaged bytes are kept for inspection');
    assert.equal(await objectSize(s3, bucket, blobKey(sha256(damaged))), undefined);

    await server.restart();
    const after = contentClient(server.address);
    await rejectsWith(info(after, sha256(damaged)), 'NOT_FOUND');
    await rejectsWith(info(after, sha256(doomed)), 'NOT_FOUND');
    assert.ok((await read(after, sha256(kept))).data.equals(kept));
  });

  test('import-local uploads containerd\'s local blobs to the bucket, verified, and the server serves them', async () => {
    const bucket = await newBucket(s3);
    const source = await mkdtemp(join(tmpdir(), 'contentd-s3-import-'));
    const root = await mkdtemp(join(tmpdir(), 'contentd-s3-import-root-'));
    try {
      const blobs = [randomBytes(12 * MiB), randomBytes(777)];
      const dir = join(source, 'io.containerd.content.v1.content', 'blobs', 'sha256');
      await mkdir(dir, { recursive: true });
      for (const data of blobs) await writeFile(join(dir, sha256(data).slice(7)), data);
      await writeFile(join(root, 'config.toml'), s3ServerConfig(ceph, { bucket }));
      const res = await run(process.execPath, [CLI, '--root', root, '--config', join(root, 'config.toml'), 'import-local', '--json', source], { timeoutMs: 120_000 });
      assert.equal(res.code, 0, res.stderr);
      assert.equal((JSON.parse(res.stdout) as { copied: number }).copied, 2);
      for (const data of blobs) assert.equal(await objectSize(s3, bucket, blobKey(sha256(data))), data.length);

      const server = await startTestServer({ root, config: s3ServerConfig(ceph, { bucket }) });
      servers.push(server);
      const client = contentClient(server.address);
      for (const data of blobs) assert.ok((await read(client, sha256(data))).data.equals(data));
    } finally {
      await rm(source, { recursive: true, force: true });
    }
  });

  test('memory stays bounded: a 256 MiB blob is written and read with far less resident memory', async () => {
    const { server, client } = await serve({ cacheMaxBytes: 64 * MiB });
    const data = randomBytes(256 * MiB);
    await writeBlob(client, 'huge', data, { chunk: 4 * MiB });
    assert.ok((await read(client, sha256(data))).data.equals(data));
    const peak = peakRss(server.process.pid!);
    assert.ok(peak < 200 * MiB, `peak RSS ${Math.round(peak / MiB)} MiB`);
  });

  test('object storage down: reads that miss the cache fail UNAVAILABLE, cached ones still work', async () => {
    const { client } = await serve({ cacheMaxBytes: 4 * CHUNK });
    const cachedBlob = randomBytes(1000);
    const uncached = randomBytes(3 * CHUNK);
    await writeBlob(client, 'cached', cachedBlob);
    await writeBlob(client, 'uncached', uncached);
    await ceph.stop();
    assert.ok((await read(client, sha256(cachedBlob))).data.equals(cachedBlob));
    await rejectsWith(read(client, sha256(uncached), 0, 100), 'UNAVAILABLE', /object storage/);
  });
});
