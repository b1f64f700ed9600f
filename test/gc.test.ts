// The garbage collector on real files: containerd's graph (root → index →
// manifest → config and layers), leases holding ingests and blobs, expiry,
// namespaces sharing bytes, and every way a collection starts (on demand
// through the server or offline, on a schedule, after a threshold of
// deletions, on a lease delete with sync).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import winston from 'winston';
import { loadConfig } from '../src/config/config';
import { openStore } from '../src/server/server';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import type { LeasesClient } from '../generated/containerd/services/leases/v1/leases';
import type { ContentClient } from '../generated/containerd/services/content/v1/content';
import { contentClient, info, listStatuses, md, read, rejectsWith, remove, sha256, update, writeBlob, WriteSession } from './support/client';
import { blobFileAppears, blobOnDisk, blobPath, contentRows, ingestFiles, ingestRows, withMetadata } from './support/disk';
import { serverFixture } from './support/fixture';
import { createLease, expiresIn, leasesClient, listLeases, runGc } from './support/leases';
import { CLI, startTestServer } from './support/server';

/** No scheduled or threshold runs: only the collections a test asks for. */
const MANUAL = '[gc]\ninterval = "0"\ndeletion_threshold = 0\n';
const NS = md('gc-test');

let counter = 0;
const ref = (): string => `gc-${counter++}`;

interface Blob {
  data: Buffer;
  digest: string;
}

async function put(client: ContentClient, labels: Record<string, string> = {}, metadata = NS, size = 512): Promise<Blob> {
  const data = randomBytes(size);
  await writeBlob(client, ref(), data, { metadata, labels });
  return { data, digest: sha256(data) };
}

/** The blob's bytes are on disk and its row is in SQLite. */
function stored(root: string, blob: Blob): boolean {
  const rows = withMetadata(root, (db) => db.prepare('SELECT count(*) AS n FROM blobs WHERE digest = ?').get(blob.digest) as { n: number }).n;
  const file = blobOnDisk(root, blob.digest);
  assert.equal(rows === 1, file !== undefined, `${blob.digest}: row and file disagree`);
  if (file) assert.ok(file.equals(blob.data), `${blob.digest}: bytes on disk differ`);
  return file !== undefined;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('collector: the image graph', () => {
  const fx = serverFixture({ config: MANUAL });

  test('root → index → manifest → config and layers are kept; an unreferenced blob is removed; dry run first', async () => {
    const config = await put(fx.client);
    const layers = [await put(fx.client, {}, NS, 4096), await put(fx.client, {}, NS, 8192)];
    const manifest = await put(fx.client, {
      'containerd.io/gc.ref.content.config': config.digest,
      'containerd.io/gc.ref.content.l.0': layers[0]!.digest,
      'containerd.io/gc.ref.content.l.1': layers[1]!.digest,
    });
    const index = await put(fx.client, { 'containerd.io/gc.root': '2024-01-01T00:00:00Z', 'containerd.io/gc.ref.content.m.0': manifest.digest });
    const orphan = await put(fx.client, {}, NS, 3000);
    // Not a reference: containerd reads only gc.ref.content exactly or followed by "." or "/".
    const lookalike = await put(fx.client, { 'containerd.io/gc.root': 'x', 'containerd.io/gc.ref.contentx': orphan.digest });
    const graph = [index, manifest, config, ...layers];

    const dry = await runGc(fx.server.root, { dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.blobs.map((b) => b.digest),
      [orphan.digest],
    );
    assert.equal(dry.bytesReclaimed, 3000);
    assert.ok(stored(fx.server.root, orphan), 'a dry run removes nothing');

    const run = await runGc(fx.server.root);
    assert.equal(run.via.by, 'server');
    assert.deepEqual(run.content, [{ namespace: 'gc-test', digest: orphan.digest }]);
    for (const blob of [...graph, lookalike]) assert.ok(stored(fx.server.root, blob), `${blob.digest} kept`);
    assert.equal(stored(fx.server.root, orphan), false);
    assert.deepEqual(contentRows(fx.server.root, orphan.digest), []);
    await rejectsWith(info(fx.client, orphan.digest, NS), 'NOT_FOUND');

    // Dropping the root label releases the whole graph.
    await update(fx.client, index.digest, {}, ['labels.containerd.io/gc.root'], NS);
    const second = await runGc(fx.server.root);
    assert.equal(second.blobs.length, graph.length);
    for (const blob of graph) assert.equal(stored(fx.server.root, blob), false);
  });

  test('an ingest without a lease is kept within [gc] ingest_expiry (24h by default)', async () => {
    const ns = md('gc-fresh');
    const r = ref();
    const session = new WriteSession(fx.client, ns);
    await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: randomBytes(100) });
    await session.close();
    const run = await runGc(fx.server.root);
    assert.ok(!run.ingests.some((i) => i.ref === r));
    assert.deepEqual(
      (await listStatuses(fx.client, [], ns)).map((s) => s.ref),
      [r],
    );
  });

  test('the global namespace (containerd as proxy) is never collected, whatever its labels', async () => {
    const GLOBAL = md();
    const plain = await put(fx.client, {}, GLOBAL);
    const referencing = await put(fx.client, { 'containerd.io/gc.ref.content': plain.digest }, GLOBAL);
    const run = await runGc(fx.server.root);
    assert.ok(!run.blobs.some((b) => b.digest === plain.digest || b.digest === referencing.digest));
    assert.ok(stored(fx.server.root, plain));
    assert.ok(stored(fx.server.root, referencing));
    // Only its own Delete removes it.
    await remove(fx.client, plain.digest, GLOBAL);
    assert.equal(stored(fx.server.root, plain), false);
  });

  test('a delete in one namespace leaves the bytes another namespace still sees', async () => {
    const other = md('gc-other');
    const blob = await put(fx.client, { 'containerd.io/gc.root': 'x' }, NS, 2048);
    await writeBlob(fx.client, ref(), blob.data, { metadata: other, labels: { 'containerd.io/gc.root': 'x' } });
    await remove(fx.client, blob.digest, NS);
    await runGc(fx.server.root);
    assert.ok(stored(fx.server.root, blob));
    assert.deepEqual((await read(fx.client, blob.digest, 0, 0, other)).data, blob.data);
    await remove(fx.client, blob.digest, other);
    // The row is gone at once; the bytes wait for the collector.
    assert.ok(stored(fx.server.root, blob));
    const run = await runGc(fx.server.root);
    assert.deepEqual(run.blobs, [{ digest: blob.digest, size: 2048 }]);
    assert.equal(stored(fx.server.root, blob), false);
  });

  test('references are per namespace: a label in one namespace does not keep another namespace\'s row', async () => {
    const other = md('gc-refs');
    const target = await put(fx.client, {}, other);
    await put(fx.client, { 'containerd.io/gc.root': 'x', 'containerd.io/gc.ref.content': target.digest }, NS);
    await runGc(fx.server.root);
    await rejectsWith(info(fx.client, target.digest, other), 'NOT_FOUND');
  });

  test('an ingest shared from a blob keeps that blob while the source namespace deletes it', async () => {
    const source = md('gc-source');
    const blob = await put(fx.client, {}, source, 4096);
    const session = new WriteSession(fx.client, NS);
    const r = ref();
    const stat = await session.send({ action: WriteAction.STAT, ref: r, total: blob.data.length, expected: blob.digest });
    assert.equal(stat.offset, blob.data.length);
    await session.close();
    await remove(fx.client, blob.digest, source);
    await runGc(fx.server.root);
    assert.ok(stored(fx.server.root, blob));
    const resume = new WriteSession(fx.client, NS);
    await resume.send({ action: WriteAction.COMMIT, ref: r, offset: blob.data.length, total: blob.data.length, expected: blob.digest, labels: { 'containerd.io/gc.root': 'x' } });
    await resume.close();
    assert.deepEqual((await read(fx.client, blob.digest, 0, 0, NS)).data, blob.data);
  });
});

describe('collector: a blob published ahead of its commit', () => {
  // The race itself is too narrow to hit through a socket: the collector has
  // swept a row of the digest and removes its file next, while an ingest of
  // the same bytes has just published them, waiting for its COMMIT. Driven
  // here on the store itself, on real files.
  test('is not taken for the swept blob\'s file: its commit finds the bytes in place', async () => {
    const config = loadConfig();
    config.root = await mkdtemp(join(tmpdir(), 'contentd-gc-early-'));
    const { store, close } = await openStore(config, winston.createLogger({ silent: true }));
    try {
      const data = randomBytes(4096);
      const digest = sha256(data);
      const writer = await store.writer({ namespace: 'gc-early' }, { ref: 'early', total: data.length });
      await writer.write(0, data);
      await blobFileAppears(config.root, digest);
      assert.equal(await store.removeBlobFile(digest, data.length), false, 'the collector leaves it');
      assert.deepEqual(blobOnDisk(config.root, digest), data);
      assert.equal((await writer.commit()).digest, digest);
      assert.deepEqual(blobOnDisk(config.root, digest), data);
    } finally {
      await close();
      await rm(config.root, { recursive: true, force: true });
    }
  });
});

describe('collector: leases and ingests', () => {
  const fx = serverFixture({ config: `${MANUAL}ingest_expiry = "1s"\n` });
  let leases: LeasesClient;
  before(() => {
    leases = leasesClient(fx.server.address);
  });
  after(() => leases?.close());

  async function partialIngest(metadata = NS): Promise<{ ref: string; session: WriteSession }> {
    const r = ref();
    const session = new WriteSession(fx.client, metadata);
    await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: randomBytes(700) });
    return { ref: r, session };
  }

  const ingestIdOf = (r: string): string | undefined => ingestRows(fx.server.root).find((row) => row.ref === r)?.id;

  test('a live lease holds an ingest and a blob; once it has expired the collector releases both and removes the lease', async () => {
    const live = 'live-lease';
    await createLease(leases, NS, live, expiresIn(3_600_000));
    const meta = md('gc-test', live);
    const blob = await put(fx.client, {}, meta, 1500);
    const { ref: r, session } = await partialIngest(meta);
    await session.close();
    const id = ingestIdOf(r)!;
    // Well past the ingest expiry: the lease, not the age, decides.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await runGc(fx.server.root);
    assert.ok(stored(fx.server.root, blob));
    assert.ok(ingestFiles(fx.server.root).includes(id), 'leased ingest kept');

    // An expired lease (containerd.io/gc.expire in the past) holds nothing.
    const expired = 'expired-lease';
    await createLease(leases, NS, expired, expiresIn(-60_000));
    const emeta = md('gc-test', expired);
    const eblob = await put(fx.client, {}, emeta, 1600);
    const { ref: er, session: esession } = await partialIngest(emeta);
    await esession.close();
    const eid = ingestIdOf(er)!;
    const run = await runGc(fx.server.root);
    assert.deepEqual(run.leases, [{ namespace: 'gc-test', id: expired }]);
    assert.deepEqual(run.ingests, [{ namespace: 'gc-test', ref: er }]);
    assert.equal(stored(fx.server.root, eblob), false);
    assert.equal(ingestFiles(fx.server.root).includes(eid), false, 'ingest file removed');
    assert.equal(ingestIdOf(er), undefined, 'ingest row removed');
    assert.deepEqual(
      (await listLeases(leases, NS)).map((l) => l.id),
      [live],
    );
    assert.ok(stored(fx.server.root, blob));
  });

  test('a lease labelled containerd.io/gc.flat holds its content but not what that content references', async () => {
    const flat = 'flat-lease';
    await createLease(leases, NS, flat, { 'containerd.io/gc.flat': 'true' });
    const child = await put(fx.client);
    const parent = await put(fx.client, { 'containerd.io/gc.ref.content': child.digest }, md('gc-test', flat));
    await runGc(fx.server.root);
    assert.ok(stored(fx.server.root, parent));
    assert.equal(stored(fx.server.root, child), false);
  });

  test('ingests without a lease expire after [gc] ingest_expiry; one open by a writer never does', async () => {
    const ns = md('gc-expiry');
    const stale = await partialIngest(ns);
    await stale.session.close();
    const staleId = ingestIdOf(stale.ref)!;
    const open = await partialIngest(ns);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const run = await runGc(fx.server.root);
    assert.deepEqual(
      run.ingests.map((i) => i.ref),
      [stale.ref],
    );
    assert.equal(ingestFiles(fx.server.root).includes(staleId), false);
    assert.deepEqual(
      (await listStatuses(fx.client, [], ns)).map((s) => s.ref),
      [open.ref],
    );
    // The writer kept open across the collection still commits.
    const more = randomBytes(10);
    const res = await open.session.send({ action: WriteAction.COMMIT, offset: 700, data: more, labels: { 'containerd.io/gc.root': 'x' } });
    await open.session.close();
    assert.equal((await info(fx.client, res.digest, ns)).size, 710);
  });
});

describe('collector: when it runs', () => {
  test('on a schedule ([gc] interval)', async () => {
    const server = await startTestServer({ config: '[gc]\ninterval = "300ms"\ndeletion_threshold = 0\n' });
    const client = contentClient(server.address);
    try {
      // A root until deleted, so that no scheduled pass takes it before the Delete.
      const blob = await put(client, { 'containerd.io/gc.root': 'x' });
      await remove(client, blob.digest, NS);
      await until(() => !existsSync(blobPath(server.root, blob.digest)), 'the scheduled collection');
      assert.equal(stored(server.root, blob), false);
    } finally {
      client.close();
      await server.destroy();
    }
  });

  test('after [gc] deletion_threshold deletions by namespaced clients', async () => {
    const server = await startTestServer({ config: '[gc]\ninterval = "0"\ndeletion_threshold = 3\n' });
    const client = contentClient(server.address);
    try {
      const blobs = [await put(client), await put(client), await put(client)];
      await remove(client, blobs[0]!.digest, NS);
      await remove(client, blobs[1]!.digest, NS);
      // Two deletions: below the threshold, and no schedule, so no collection.
      assert.ok(stored(server.root, blobs[0]!));
      await remove(client, blobs[2]!.digest, NS);
      await until(() => blobs.every((b) => !existsSync(blobPath(server.root, b.digest))), 'the collection after the third deletion');
      for (const b of blobs) assert.equal(stored(server.root, b), false);
    } finally {
      client.close();
      await server.destroy();
    }
  });

  test('offline: `contentd gc` locks the root and collects itself when no server runs', async () => {
    const server = await startTestServer({ config: MANUAL });
    const client = contentClient(server.address);
    try {
      const keep = await put(client, { 'containerd.io/gc.root': 'x' });
      const drop = await put(client);
      client.close();
      await server.stop();
      const dry = await runGc(server.root, { dryRun: true });
      assert.deepEqual(dry.via, { by: 'offline' });
      assert.deepEqual(
        dry.blobs.map((b) => b.digest),
        [drop.digest],
      );
      assert.ok(stored(server.root, drop));
      const run = await runGc(server.root);
      assert.deepEqual(run.via, { by: 'offline' });
      assert.equal(stored(server.root, drop), false);
      assert.ok(stored(server.root, keep));
      // The lock is released: the server starts again on the root.
      await server.restart();
    } finally {
      client.close();
      await server.destroy();
    }
  });

  test('`contentd gc` fails clearly when another process holds the root and no server answers at the address', async () => {
    const server = await startTestServer({ config: MANUAL });
    try {
      const wrong = join(server.root, 'not-the-socket.sock');
      const failure = await promisify(execFile)(process.execPath, [CLI, '--root', server.root, 'gc', '--address', wrong], { encoding: 'utf8' }).then(
        () => assert.fail('gc succeeded'),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(failure.code, 1);
      assert.match(failure.stderr, /in use by another contentd process, and no server answers at .*not-the-socket\.sock/);
      // With the right address (the default), the server collects.
      assert.equal((await runGc(server.root)).via.by, 'server');
    } finally {
      await server.destroy();
    }
  });
});
