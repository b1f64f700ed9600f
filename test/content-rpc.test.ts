// Info, Update, List and Delete against a real server, with containerd's
// semantics (services/content/contentserver + metadata/content.go), checking
// metadata.db and the blob files behind the answers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { info, list, listMessages, rejectsWith, remove, sha256, toNs, update, writeBlob, WriteSession } from './support/client';
import { blobOnDisk, blobPath, contentRows, ingestOf, modeOf } from './support/disk';
import { serverFixture } from './support/fixture';

const ABSENT = sha256(Buffer.from('never written'));


let counter = 0;
/** Commits fresh random bytes; returns the digest. */
async function put(fx: ReturnType<typeof serverFixture>, labels: Record<string, string> = {}, size = 64): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const res = await writeBlob(fx.client, `rpc-${process.pid}-${counter++}`, data, { labels });
  return { digest: res.digest, data };
}

describe('Info', () => {
  const fx = serverFixture();

  test('an absent digest is NOT_FOUND', async () => {
    await rejectsWith(info(fx.client, ABSENT), 'NOT_FOUND');
  });

  test('malformed digests and unknown algorithms are INVALID_ARGUMENT', async () => {
    for (const digest of ['', 'sha256', 'sha256:xyz', `sha256:${'A'.repeat(64)}`, `md5:${'0'.repeat(32)}`, `sha512:${'0'.repeat(128)}`]) {
      await rejectsWith(info(fx.client, digest), 'INVALID_ARGUMENT');
    }
  });

  test('reports size, labels and nanosecond timestamps of committed content', async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const stamps: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const { digest, data } = await put(fx, { 'containerd.io/gc.root': 'x' }, 1000 + i);
      const got = await info(fx.client, digest);
      assert.equal(got.digest, digest);
      assert.equal(got.size, data.length);
      assert.deepEqual(got.labels, { 'containerd.io/gc.root': 'x' });
      assert.equal(toNs(got.createdAt), toNs(got.updatedAt));
      assert.ok(toNs(got.createdAt) >= before, 'created no earlier than the request');
      stamps.push(toNs(got.createdAt));
    }
    // Millisecond clocks give nanos that are multiples of 1e6; containerd's are not.
    assert.ok(
      stamps.some((ns) => ns % 1_000_000n !== 0n),
      `timestamps carry sub-millisecond precision: ${stamps.join(', ')}`,
    );
  });
});

describe('Update', () => {
  const fx = serverFixture();

  test('without fieldpaths replaces all labels and moves updatedAt only', async () => {
    const { digest } = await put(fx, { a: '1', b: '2' });
    const was = await info(fx.client, digest);
    const got = await update(fx.client, digest, { c: '3' });
    assert.deepEqual(got.labels, { c: '3' });
    assert.equal(toNs(got.createdAt), toNs(was.createdAt));
    assert.ok(toNs(got.updatedAt) > toNs(was.updatedAt), 'updatedAt moved forward');
    const now = await info(fx.client, digest);
    assert.deepEqual(now.labels, { c: '3' });
    assert.equal(toNs(now.updatedAt), toNs(got.updatedAt));
    assert.deepEqual(JSON.parse(contentRows(fx.server.root, digest)[0]!.labels), { c: '3' });
  });

  test('fieldpath "labels" replaces all labels', async () => {
    const { digest } = await put(fx, { a: '1', b: '2' });
    assert.deepEqual((await update(fx.client, digest, { b: 'x', d: '4' }, ['labels'])).labels, { b: 'x', d: '4' });
    assert.deepEqual((await update(fx.client, digest, {}, ['labels'])).labels, {});
    assert.deepEqual((await info(fx.client, digest)).labels, {});
  });

  test('fieldpath "labels.KEY" sets or deletes that key alone', async () => {
    const { digest } = await put(fx, { a: '1', b: '2' });
    // Labels not named by a fieldpath are ignored even when sent.
    assert.deepEqual((await update(fx.client, digest, { a: 'changed', c: '3' }, ['labels.c'])).labels, { a: '1', b: '2', c: '3' });
    assert.deepEqual((await update(fx.client, digest, {}, ['labels.a'])).labels, { b: '2', c: '3' });
    assert.deepEqual((await update(fx.client, digest, { 'containerd.io/gc.ref.content.0': ABSENT }, ['labels.containerd.io/gc.ref.content.0'])).labels, {
      b: '2',
      c: '3',
      'containerd.io/gc.ref.content.0': ABSENT,
    });
    assert.deepEqual(JSON.parse(contentRows(fx.server.root, digest)[0]!.labels), (await info(fx.client, digest)).labels);
  });

  test('an unknown fieldpath is INVALID_ARGUMENT and changes nothing', async () => {
    const { digest } = await put(fx, { a: '1' });
    const was = await info(fx.client, digest);
    await rejectsWith(update(fx.client, digest, { a: '2' }, ['labels.a', 'size']), 'INVALID_ARGUMENT');
    await rejectsWith(update(fx.client, digest, {}, ['digest']), 'INVALID_ARGUMENT');
    const now = await info(fx.client, digest);
    assert.deepEqual(now.labels, { a: '1' });
    assert.equal(toNs(now.updatedAt), toNs(was.updatedAt));
  });

  test('absent content is NOT_FOUND, a malformed digest INVALID_ARGUMENT', async () => {
    await rejectsWith(update(fx.client, ABSENT, { a: '1' }), 'NOT_FOUND');
    await rejectsWith(update(fx.client, 'sha256:nope', { a: '1' }), 'INVALID_ARGUMENT');
  });
});

describe('List', () => {
  const fx = serverFixture();
  const blobs: Array<{ digest: string; data: Buffer }> = [];

  test('streams 250 blobs in batches of at most 100', async () => {
    for (let i = 0; i < 250; i++) blobs.push(await put(fx, { batch: 'big', parity: i % 2 ? 'odd' : 'even', 'a.b/c': String(i) }, 16));
    const messages = await listMessages(fx.client);
    assert.ok(messages.length >= 3, `several messages (${messages.length})`);
    for (const m of messages) assert.ok(m.info.length > 0 && m.info.length <= 100, `batch of ${m.info.length}`);
    const listed = messages.flatMap((m) => m.info);
    assert.deepEqual(listed.map((i) => i.digest).sort(), blobs.map((b) => b.digest).sort());
    for (const i of listed) assert.equal(i.size, 16);
  });

  test('filters on labels with quoted keys, on digest, ORed across filters', async () => {
    const odd = await list(fx.client, ['labels.parity==odd']);
    assert.equal(odd.length, 125);
    assert.ok(odd.every((i) => i.labels.parity === 'odd'));
    assert.deepEqual((await list(fx.client, ['labels."parity"==even'])).length, 125);

    const seven = await list(fx.client, ['labels."a.b/c"==7']);
    assert.deepEqual(seven.map((i) => i.digest), [blobs[7]!.digest]);

    const one = await list(fx.client, [`digest==${blobs[3]!.digest}`]);
    assert.deepEqual(one.map((i) => i.digest), [blobs[3]!.digest]);

    const either = await list(fx.client, [`digest==${blobs[3]!.digest}`, 'labels."a.b/c"==8']);
    assert.deepEqual(either.map((i) => i.digest).sort(), [blobs[3]!.digest, blobs[8]!.digest].sort());

    // A comma is AND inside one filter.
    assert.equal((await list(fx.client, ['labels.parity==odd,labels."a.b/c"==8'])).length, 0);
    assert.equal((await list(fx.client, ['labels.batch'])).length, 250);
    assert.equal((await list(fx.client, ['labels.missing'])).length, 0);
    assert.equal((await list(fx.client, ['labels.parity~=^od'])).length, 125);
  });

  test('a malformed filter is INVALID_ARGUMENT', async () => {
    await rejectsWith(list(fx.client, ['labels.parity==']), 'INVALID_ARGUMENT');
    await rejectsWith(list(fx.client, ['labels."unterminated==x']), 'INVALID_ARGUMENT');
    await rejectsWith(list(fx.client, ['labels.x~=[']), 'INVALID_ARGUMENT');
  });
});

describe('Delete', () => {
  const fx = serverFixture();

  test('in the global namespace, removes the row and the blob file at once', async () => {
    const { digest, data } = await put(fx, {}, 4096);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    await remove(fx.client, digest);
    await rejectsWith(info(fx.client, digest), 'NOT_FOUND');
    assert.equal(existsSync(blobPath(fx.server.root, digest)), false, 'blob file removed');
    assert.deepEqual(contentRows(fx.server.root, digest), []);
    await rejectsWith(remove(fx.client, digest), 'NOT_FOUND');
  });

  test('absent content is NOT_FOUND, a malformed digest INVALID_ARGUMENT', async () => {
    await rejectsWith(remove(fx.client, ABSENT), 'NOT_FOUND');
    await rejectsWith(remove(fx.client, 'md5:d41d8cd98f00b204e9800998ecf8427e'), 'INVALID_ARGUMENT');
  });

  test('deleted content can be written again', async () => {
    const { digest, data } = await put(fx, {}, 100);
    await remove(fx.client, digest);
    await writeBlob(fx.client, 'again', data);
    assert.equal((await info(fx.client, digest)).size, 100);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
  });
});

describe('data files', () => {
  const fx = serverFixture();

  test('blobs, ingests, metadata.db and their directories are not world-readable; the socket is not world-writable', async () => {
    const { digest } = await put(fx, {}, 10);
    const root = fx.server.root;
    const session = new WriteSession(fx.client);
    await session.send({ action: WriteAction.STAT, ref: 'unfinished' });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: randomBytes(10) });
    await session.close();
    const ingest = ingestOf(root, 'unfinished')!;
    for (const file of [blobPath(root, digest), join(root, 'ingest', ingest.id), join(root, 'metadata.db')]) {
      assert.ok(statSync(file).isFile());
      assert.equal(modeOf(file) & 0o077, 0, `${file} mode ${modeOf(file).toString(8)}`);
    }
    for (const dir of [join(root, 'blobs'), join(root, 'blobs', 'sha256'), join(root, 'ingest')]) {
      assert.equal(modeOf(dir) & 0o007, 0, `${dir} mode ${modeOf(dir).toString(8)}`);
    }
    assert.ok(statSync(fx.server.address).isSocket());
    assert.equal(modeOf(fx.server.address) & 0o007, 0, `socket mode ${modeOf(fx.server.address).toString(8)}`);
  });
});
