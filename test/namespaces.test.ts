// Namespaces for direct clients, with containerd's "shared" and "isolated"
// policies: what each namespace sees, what requests without a namespace see,
// and how bytes are stored (once) on disk.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { info, list, listStatuses, md, read, rejectsWith, remove, sha256, update, writeBlob, WriteSession } from './support/client';
import { blobOnDisk, blobPath, contentRows, ingestRows, withMetadata } from './support/disk';
import { serverFixture } from './support/fixture';

const A = md('team-a');
const B = md('team-b');
const GLOBAL = md();

let refs = 0;
const ref = (): string => `ns-${refs++}`;

function blobRows(root: string, digest: string): number {
  return withMetadata(root, (db) => db.prepare('SELECT count(*) AS n FROM blobs WHERE digest = ?').get(digest) as { n: number }).n;
}

describe('namespaces: what each namespace sees', () => {
  const fx = serverFixture();

  test('content committed in one namespace is invisible to another and to requests without a namespace', async () => {
    const data = randomBytes(1000);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A, labels: { owner: 'a' } });
    assert.equal((await info(fx.client, digest, A)).size, 1000);
    await rejectsWith(info(fx.client, digest, B), 'NOT_FOUND');
    await rejectsWith(info(fx.client, digest, GLOBAL), 'NOT_FOUND');
    await rejectsWith(read(fx.client, digest, 0, 0, B), 'NOT_FOUND');
    assert.deepEqual(
      (await list(fx.client, [], B)).map((i) => i.digest),
      [],
    );
    await rejectsWith(remove(fx.client, digest, B), 'NOT_FOUND');
    assert.deepEqual(contentRows(fx.server.root, digest), [{ namespace: 'team-a', labels: '{"owner":"a"}' }]);
  });

  test('labels belong to a namespace: an update in one leaves the other alone', async () => {
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A, labels: { k: 'a' } });
    await writeBlob(fx.client, ref(), data, { metadata: B, labels: { k: 'b' } });
    await update(fx.client, digest, { k: 'changed' }, ['labels.k'], A);
    assert.equal((await info(fx.client, digest, A)).labels.k, 'changed');
    assert.equal((await info(fx.client, digest, B)).labels.k, 'b');
    assert.deepEqual(
      (await list(fx.client, ['labels.k==b'], A)).map((i) => i.digest),
      [],
    );
  });

  test('ingests belong to a namespace: the same ref in two namespaces is two ingests', async () => {
    const r = ref();
    for (const [metadata, bytes] of [
      [A, 'aaaa'],
      [B, 'bb'],
    ] as const) {
      const session = new WriteSession(fx.client, metadata);
      await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: Buffer.from(bytes) });
      await session.close();
    }
    const offsets = async (metadata: typeof A) => (await listStatuses(fx.client, [`ref==${r}`], metadata)).map((s) => s.offset);
    assert.deepEqual(await offsets(A), [4]);
    assert.deepEqual(await offsets(B), [2]);
    assert.deepEqual(await offsets(GLOBAL), []);
    assert.equal(ingestRows(fx.server.root).filter((row) => row.ref === r).length, 2);
  });

  test('a namespaced Delete removes that namespace\'s row only; the bytes another namespace sees stay', async () => {
    const data = randomBytes(300);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    await writeBlob(fx.client, ref(), data, { metadata: B });
    await remove(fx.client, digest, A);
    await rejectsWith(info(fx.client, digest, A), 'NOT_FOUND');
    assert.deepEqual((await read(fx.client, digest, 0, 0, B)).data, data);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    assert.deepEqual(
      contentRows(fx.server.root, digest).map((r) => r.namespace),
      ['team-b'],
    );
  });

  test('requests without a namespace keep containerd\'s local-store behaviour: Delete removes the file at once', async () => {
    const data = randomBytes(200);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: GLOBAL });
    assert.ok(existsSync(blobPath(fx.server.root, digest)));
    await remove(fx.client, digest, GLOBAL);
    assert.equal(existsSync(blobPath(fx.server.root, digest)), false);
    assert.equal(blobRows(fx.server.root, digest), 0);
  });

  test('invalid namespace names are INVALID_ARGUMENT (containerd identifier rules)', async () => {
    for (const name of ['bad ns', '-leading', 'trailing.', 'a..b', 'x'.repeat(77)]) {
      await rejectsWith(info(fx.client, sha256(Buffer.from('x')), md(name)), 'INVALID_ARGUMENT', /namespace/);
      await rejectsWith(list(fx.client, [], md(name)), 'INVALID_ARGUMENT', /namespace/);
    }
    // The longest and most punctuated valid names work.
    for (const name of ['x'.repeat(76), 'a.b-c_d', '0']) {
      assert.deepEqual(await list(fx.client, [], md(name)), []);
    }
  });
});

describe('namespaces: shared policy (containerd\'s default)', () => {
  const fx = serverFixture();

  test('a writer in another namespace for a stored digest completes without the bytes being sent again', async () => {
    const data = randomBytes(64 * 1024);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    const session = new WriteSession(fx.client, B);
    const stat = await session.send({ action: WriteAction.STAT, ref: ref(), total: data.length, expected: digest });
    // The ingest starts as a copy of the stored blob: nothing left to send.
    assert.equal(stat.offset, data.length);
    assert.equal(stat.digest, digest);
    const commit = await session.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: digest, labels: { b: 'yes' } });
    assert.equal(commit.digest, digest);
    await session.close();
    assert.deepEqual((await read(fx.client, digest, 0, 0, B)).data, data);
    assert.deepEqual((await info(fx.client, digest, B)).labels, { b: 'yes' });
    // Stored once: one blob row, one file, two namespaces.
    assert.equal(blobRows(fx.server.root, digest), 1);
    assert.deepEqual(
      contentRows(fx.server.root, digest)
        .map((r) => r.namespace)
        .sort(),
      ['team-a', 'team-b'],
    );
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    assert.deepEqual(readdirSync(join(fx.server.root, 'ingest')), []);
  });

  test('content becomes visible in the other namespace only once that namespace writes it', async () => {
    const data = randomBytes(500);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    await rejectsWith(info(fx.client, digest, B), 'NOT_FOUND');
    const session = new WriteSession(fx.client, B);
    await session.send({ action: WriteAction.STAT, ref: ref(), total: data.length, expected: digest });
    // Still an ingest, not content, until the commit.
    await rejectsWith(info(fx.client, digest, B), 'NOT_FOUND');
    await session.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: digest });
    await session.close();
    assert.equal((await info(fx.client, digest, B)).size, 500);
  });

  test('a declared size that does not match the stored blob is not shared (as in containerd)', async () => {
    const data = randomBytes(400);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    const session = new WriteSession(fx.client, B);
    const stat = await session.send({ action: WriteAction.STAT, ref: ref(), total: data.length + 1, expected: digest });
    assert.equal(stat.offset, 0);
    session.cancel();
  });

  test('a shared writer that writes from offset 0 replaces the copy with its own bytes', async () => {
    const data = randomBytes(300);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    // writeBlob sends every byte from offset 0 when asked to: the ingest is then its own.
    const session = new WriteSession(fx.client, B);
    await session.send({ action: WriteAction.STAT, ref: ref(), total: data.length, expected: digest });
    await session.send({ action: WriteAction.WRITE, offset: 0, data });
    await session.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: digest });
    await session.close();
    assert.deepEqual((await read(fx.client, digest, 0, 0, B)).data, data);
  });
});

describe('namespaces: isolated policy', () => {
  const fx = serverFixture({ config: '[namespaces]\npolicy = "isolated"\n' });

  test('every namespace sends its own bytes; they are still stored once', async () => {
    const data = randomBytes(10_000);
    const digest = sha256(data);
    await writeBlob(fx.client, ref(), data, { metadata: A });
    const session = new WriteSession(fx.client, B);
    const stat = await session.send({ action: WriteAction.STAT, ref: ref(), total: data.length, expected: digest });
    assert.equal(stat.offset, 0);
    // Committing without the bytes fails: the ingest is empty.
    await assert.rejects(session.send({ action: WriteAction.COMMIT, offset: 0, total: data.length, expected: digest }));
    await writeBlob(fx.client, ref(), data, { metadata: B });
    assert.deepEqual((await read(fx.client, digest, 0, 0, B)).data, data);
    assert.equal(blobRows(fx.server.root, digest), 1);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
  });
});
