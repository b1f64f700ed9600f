// The Write stream with containerd's service semantics
// (services/content/contentserver Write + content/local writer): refs,
// declared size and digest, offsets, truncation, commit outcomes and the
// ingest state each leaves on disk.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { info, read, rejectsWith, sha256, status, toNs, writeBlob, WriteSession } from './support/client';
import { blobFileAppears, blobOnDisk, blobPath, contentRows, ingestFiles, ingestOf, ingestRows } from './support/disk';
import { serverFixture } from './support/fixture';
import { waitFor } from './support/process';


describe('Write', () => {
  const fx = serverFixture();
  const { STAT, WRITE, COMMIT } = WriteAction;
  const open = (): WriteSession => new WriteSession(fx.client);

  test('the first message must carry a ref', async () => {
    for (const action of [STAT, WRITE, COMMIT]) {
      const session = open();
      await rejectsWith(session.send({ action, data: Buffer.from('x') }), 'INVALID_ARGUMENT', /reference/);
    }
    assert.deepEqual(ingestRows(fx.server.root), []);
  });

  test('STAT reports offset, total, the digest of the bytes so far and start/update times', async () => {
    const data = randomBytes(3000);
    const session = open();
    const first = await session.send({ action: STAT, ref: 'stat', total: data.length });
    assert.equal(first.offset, 0);
    assert.equal(first.total, data.length);
    assert.equal(first.digest, sha256(Buffer.alloc(0)));
    assert.equal(toNs(first.startedAt), toNs(first.updatedAt));
    assert.ok(toNs(first.startedAt) > 0n);

    await session.send({ action: WRITE, offset: 0, data: data.subarray(0, 1000) });
    const second = await session.send({ action: STAT });
    assert.equal(second.offset, 1000);
    assert.equal(second.digest, sha256(data.subarray(0, 1000)));
    assert.equal(toNs(second.startedAt), toNs(first.startedAt));
    assert.ok(toNs(second.updatedAt) > toNs(first.updatedAt), 'updatedAt moved');

    const ingest = ingestOf(fx.server.root, 'stat')!;
    const committed = await session.send({ action: COMMIT, offset: 1000, data: data.subarray(1000) });
    assert.equal(committed.offset, data.length);
    assert.equal(committed.digest, sha256(data));
    await session.close();
    assert.deepEqual(blobOnDisk(fx.server.root, committed.digest), data);
    assert.equal(ingestOf(fx.server.root, 'stat'), undefined);
    assert.ok(!ingestFiles(fx.server.root).includes(ingest.id), 'no ingest file left after commit');
  });

  test('the stream ends with OK after COMMIT, as containerd ends it', { timeout: 10_000 }, async () => {
    const data = randomBytes(10);
    const session = open();
    await session.send({ action: STAT, ref: 'commit-ends' });
    await session.send({ action: COMMIT, offset: 0, data });
    // No half-close from the client: the server ends the call itself.
    await session.done;
    assert.equal((await info(fx.client, sha256(data))).size, 10);
  });

  test('labels sent with COMMIT are stored', async () => {
    const data = randomBytes(50);
    const labels = { 'containerd.io/gc.root': '2024', 'x/y': 'z' };
    const res = await writeBlob(fx.client, 'labelled', data, { labels });
    assert.deepEqual((await info(fx.client, res.digest)).labels, labels);
    assert.deepEqual(JSON.parse(contentRows(fx.server.root, res.digest)[0]!.labels), labels);
  });

  test('oversized labels at COMMIT are INVALID_ARGUMENT and keep the ingest', async () => {
    const data = randomBytes(30);
    const session = open();
    await session.send({ action: STAT, ref: 'big-label' });
    await session.send({ action: WRITE, offset: 0, data });
    await rejectsWith(session.send({ action: COMMIT, offset: 30, labels: { key: 'v'.repeat(5000) } }), 'INVALID_ARGUMENT', /label/);
    assert.equal((await status(fx.client, 'big-label')).offset, 30);
    await rejectsWith(info(fx.client, sha256(data)), 'NOT_FOUND');
    assert.deepEqual((await info(fx.client, (await writeBlob(fx.client, 'big-label', data, { labels: { key: 'v' } })).digest)).labels, { key: 'v' });
  });

  test('Writes sent without waiting for answers (held by the server once its queue is full) commit exactly the bytes sent', async () => {
    const piece = 8 << 10;
    const data = randomBytes(128 * piece);
    const session = open();
    await session.send({ action: STAT, ref: 'unanswered', total: data.length, expected: sha256(data) });
    const answers: Promise<unknown>[] = [];
    for (let at = 0; at < data.length; at += piece) answers.push(session.send({ action: WRITE, offset: at, data: data.subarray(at, at + piece) }));
    const committed = session.send({ action: COMMIT, offset: data.length });
    await Promise.all(answers);
    assert.equal((await committed).digest, sha256(data));
    assert.deepEqual(blobOnDisk(fx.server.root, sha256(data)), data);
  });

  test('an empty blob commits', async () => {
    const session = open();
    await session.send({ action: STAT, ref: 'empty', total: 0 });
    const res = await session.send({ action: COMMIT, offset: 0, expected: sha256(Buffer.alloc(0)) });
    assert.equal(res.digest, sha256(Buffer.alloc(0)));
    assert.equal((await info(fx.client, res.digest)).size, 0);
    assert.deepEqual(blobOnDisk(fx.server.root, res.digest), Buffer.alloc(0));
  });

  test('a size mismatch at COMMIT is FAILED_PRECONDITION and keeps the ingest for a retry', async () => {
    const data = randomBytes(2000);
    const session = open();
    await session.send({ action: STAT, ref: 'short', total: data.length, expected: sha256(data) });
    await session.send({ action: WRITE, offset: 0, data: data.subarray(0, 500) });
    await rejectsWith(session.send({ action: COMMIT, offset: 500 }), 'FAILED_PRECONDITION', /size/);
    assert.equal((await status(fx.client, 'short')).offset, 500);
    const ingest = ingestOf(fx.server.root, 'short');
    assert.ok(ingest && ingestFiles(fx.server.root).includes(ingest.id), 'ingest row and file kept');

    const retry = await writeBlob(fx.client, 'short', data);
    assert.equal(retry.digest, sha256(data));
    assert.deepEqual(blobOnDisk(fx.server.root, retry.digest), data);
    assert.equal(ingestOf(fx.server.root, 'short'), undefined);
    assert.ok(!ingestFiles(fx.server.root).includes(ingest.id));
  });

  test('a digest mismatch at COMMIT is FAILED_PRECONDITION and keeps the ingest', async () => {
    const wanted = randomBytes(100);
    const other = randomBytes(100);
    const session = open();
    await session.send({ action: STAT, ref: 'wrong-bytes', expected: sha256(wanted) });
    await session.send({ action: WRITE, offset: 0, data: other });
    await rejectsWith(session.send({ action: COMMIT, offset: 100 }), 'FAILED_PRECONDITION', /digest/);
    assert.equal((await status(fx.client, 'wrong-bytes')).offset, 100);
    await rejectsWith(info(fx.client, sha256(other)), 'NOT_FOUND');
    assert.equal(existsSync(blobPath(fx.server.root, sha256(other))), false);

    // Retry: offset 0 truncates what was there.
    const retry = open();
    assert.equal((await retry.send({ action: STAT, ref: 'wrong-bytes' })).offset, 100);
    const res = await retry.send({ action: COMMIT, offset: 0, data: wanted, expected: sha256(wanted) });
    assert.equal(res.digest, sha256(wanted));
    await retry.close();
    assert.deepEqual(blobOnDisk(fx.server.root, sha256(wanted)), wanted);
  });

  test('size and digest declared on a later message are checked at commit', async () => {
    const data = randomBytes(64);
    const session = open();
    await session.send({ action: STAT, ref: 'late' });
    await session.send({ action: WRITE, offset: 0, data, total: 65 });
    await rejectsWith(session.send({ action: COMMIT, offset: 64 }), 'FAILED_PRECONDITION', /size/);

    const again = open();
    await again.send({ action: STAT, ref: 'late' });
    await rejectsWith(again.send({ action: COMMIT, offset: 64, expected: sha256(Buffer.from('other')) }), 'FAILED_PRECONDITION', /digest/);

    const last = open();
    await last.send({ action: STAT, ref: 'late' });
    assert.equal((await last.send({ action: COMMIT, offset: 64, total: 64, expected: sha256(data) })).digest, sha256(data));
    await last.close();
  });

  test('a write at any offset but the current one (or 0) is OUT_OF_RANGE', async () => {
    const session = open();
    await session.send({ action: STAT, ref: 'gap' });
    await rejectsWith(session.send({ action: WRITE, offset: 10, data: Buffer.from('x') }), 'OUT_OF_RANGE');

    const again = open();
    await again.send({ action: STAT, ref: 'gap' });
    await again.send({ action: WRITE, offset: 0, data: Buffer.from('abcdef') });
    await rejectsWith(again.send({ action: WRITE, offset: 3, data: Buffer.from('x') }), 'OUT_OF_RANGE', /current offset 6/);
    // The failed write changed nothing.
    assert.equal((await status(fx.client, 'gap')).offset, 6);
  });

  test('offset 0 on a partly written ingest truncates it', async () => {
    const session = open();
    await session.send({ action: STAT, ref: 'truncate' });
    await session.send({ action: WRITE, offset: 0, data: Buffer.from('a'.repeat(1000)) });
    const truncated = await session.send({ action: WRITE, offset: 0, data: Buffer.from('bb') });
    assert.equal(truncated.offset, 2);
    assert.equal(truncated.digest, sha256(Buffer.from('bb')));
    const res = await session.send({ action: COMMIT, offset: 2 });
    await session.close();
    assert.deepEqual(blobOnDisk(fx.server.root, res.digest), Buffer.from('bb'));
    assert.deepEqual((await read(fx.client, res.digest)).data, Buffer.from('bb'));
  });

  test('a second stream on a ref held by a live writer is UNAVAILABLE; the holder goes on', async () => {
    const data = randomBytes(300);
    const holder = open();
    await holder.send({ action: STAT, ref: 'held' });
    await holder.send({ action: WRITE, offset: 0, data: data.subarray(0, 100) });
    const intruder = open();
    await rejectsWith(intruder.send({ action: STAT, ref: 'held' }), 'UNAVAILABLE', /locked/);
    const res = await holder.send({ action: COMMIT, offset: 100, data: data.subarray(100) });
    await holder.close();
    assert.equal(res.digest, sha256(data));
  });

  test('a cancelled writer releases its ref and keeps its bytes', async () => {
    const data = randomBytes(200);
    const first = open();
    await first.send({ action: STAT, ref: 'cancelled' });
    await first.send({ action: WRITE, offset: 0, data: data.subarray(0, 120) });
    first.cancel();
    const next = open();
    // The cancellation reaches the server asynchronously; the lock wait covers it.
    assert.equal((await next.send({ action: STAT, ref: 'cancelled' })).offset, 120);
    assert.equal((await next.send({ action: COMMIT, offset: 120, data: data.subarray(120) })).digest, sha256(data));
    await next.close();
  });

  test('once every declared byte is written the blob is published ahead of COMMIT, unseen until then; new bytes or an end without a commit take it back', async () => {
    const root = fx.server.root;
    const [data, other] = [randomBytes(50_000), randomBytes(50_000)];
    const session = open();
    await session.send({ action: STAT, ref: 'early', total: data.length });
    await session.send({ action: WRITE, offset: 0, data: data.subarray(0, 20_000) });
    await session.send({ action: WRITE, offset: 20_000, data: data.subarray(20_000) });
    await blobFileAppears(root, sha256(data));
    assert.deepEqual(blobOnDisk(root, sha256(data)), data);
    await rejectsWith(info(fx.client, sha256(data)), 'NOT_FOUND');
    assert.deepEqual(contentRows(root, sha256(data)), []);

    // The staged file and the blob name are one file: the name goes before the bytes change.
    await session.send({ action: WRITE, offset: data.length, data: Buffer.from('more') });
    assert.equal(blobOnDisk(root, sha256(data)), undefined, 'taken back by an append');
    await session.send({ action: WRITE, offset: 0, data });
    await blobFileAppears(root, sha256(data));
    await session.send({ action: WRITE, offset: 0, data: other });
    assert.equal(blobOnDisk(root, sha256(data)), undefined, 'taken back by a rewrite');
    await blobFileAppears(root, sha256(other));
    await session.close();
    await waitFor(() => Promise.resolve(blobOnDisk(root, sha256(other)) === undefined || undefined), 10_000, () => 'the name to go with the writer');
    assert.equal((await status(fx.client, 'early')).offset, other.length, 'the ingest stays, to be resumed');

    const resumed = open();
    assert.equal((await resumed.send({ action: STAT, ref: 'early' })).offset, other.length);
    assert.equal((await resumed.send({ action: COMMIT, offset: other.length, total: other.length })).digest, sha256(other));
    await resumed.close();
    assert.deepEqual(blobOnDisk(root, sha256(other)), other);
    assert.deepEqual((await read(fx.client, sha256(other))).data, other);
  });

  test('two ingests of the same bytes: the blob is the committer\'s own file, and the other ingest rewriting its bytes leaves it intact', async () => {
    const root = fx.server.root;
    const [data, other] = [randomBytes(40_000), randomBytes(40_000)];
    const early = open();
    await early.send({ action: STAT, ref: 'same-early', total: data.length });
    await early.send({ action: WRITE, offset: 0, data });
    await blobFileAppears(root, sha256(data));
    // No size declared: this one commits without an early publish of its own.
    const committer = open();
    await committer.send({ action: STAT, ref: 'same-committer' });
    await committer.send({ action: WRITE, offset: 0, data });
    assert.equal((await committer.send({ action: COMMIT, offset: data.length })).digest, sha256(data));
    await committer.close();
    await early.send({ action: WRITE, offset: 0, data: other });
    assert.deepEqual(blobOnDisk(root, sha256(data)), data, 'the committed blob kept its bytes');
    assert.deepEqual((await read(fx.client, sha256(data))).data, data);
    assert.equal((await early.send({ action: COMMIT, offset: other.length })).digest, sha256(other));
    await early.close();
    assert.deepEqual(blobOnDisk(root, sha256(other)), other);

    // Bytes already stored are not published again over the stored blob.
    const late = open();
    await late.send({ action: STAT, ref: 'same-late', total: data.length });
    await late.send({ action: WRITE, offset: 0, data });
    await late.send({ action: WRITE, offset: 0, data: randomBytes(data.length) });
    late.cancel();
    assert.deepEqual(blobOnDisk(root, sha256(data)), data, 'the stored blob kept its bytes');
  });

  test('a COMMIT that fails, or a declared digest that is already stored, takes back the early-published blob', async () => {
    const root = fx.server.root;
    const stored = randomBytes(100);
    await writeBlob(fx.client, 'early-stored', stored);
    for (const [ref, failing] of [
      ['early-labels', { action: COMMIT, offset: 30_000, labels: { big: 'x'.repeat(5000) } }],
      ['early-exists', { action: STAT, expected: sha256(stored) }],
    ] as const) {
      const data = randomBytes(30_000);
      const session = open();
      await session.send({ action: STAT, ref, total: data.length });
      await session.send({ action: WRITE, offset: 0, data });
      await blobFileAppears(root, sha256(data));
      await rejectsWith(session.send(failing), failing.action === COMMIT ? 'INVALID_ARGUMENT' : 'ALREADY_EXISTS');
      assert.equal(blobOnDisk(root, sha256(data)), undefined, `${ref}: taken back`);
      session.cancel();
    }
  });

  describe('committing content that already exists', () => {
    test('is ALREADY_EXISTS at COMMIT and removes the ingest', async () => {
      const data = randomBytes(100);
      await writeBlob(fx.client, 'exists-1', data);
      const session = open();
      await session.send({ action: STAT, ref: 'exists-2' });
      await session.send({ action: WRITE, offset: 0, data });
      const ingest = ingestOf(fx.server.root, 'exists-2');
      assert.ok(ingest && ingestFiles(fx.server.root).includes(ingest.id));
      await rejectsWith(session.send({ action: COMMIT, offset: 100 }), 'ALREADY_EXISTS');
      await rejectsWith(status(fx.client, 'exists-2'), 'NOT_FOUND');
      assert.equal(ingestOf(fx.server.root, 'exists-2'), undefined);
      assert.ok(!ingestFiles(fx.server.root).includes(ingest.id), 'ingest file removed');
      assert.deepEqual(blobOnDisk(fx.server.root, sha256(data)), data, 'the stored blob is untouched');
    });

    test('is ALREADY_EXISTS as soon as the expected digest is declared', async () => {
      const data = randomBytes(100);
      await writeBlob(fx.client, 'known-1', data);
      await rejectsWith(open().send({ action: STAT, ref: 'known-2', expected: sha256(data) }), 'ALREADY_EXISTS');
      await rejectsWith(status(fx.client, 'known-2'), 'NOT_FOUND');

      const late = open();
      await late.send({ action: STAT, ref: 'known-3' });
      await late.send({ action: WRITE, offset: 0, data: data.subarray(0, 10) });
      const ingest = ingestOf(fx.server.root, 'known-3')!;
      await rejectsWith(late.send({ action: WRITE, offset: 10, data: data.subarray(10), expected: sha256(data) }), 'ALREADY_EXISTS');
      await rejectsWith(status(fx.client, 'known-3'), 'NOT_FOUND');
      assert.ok(!ingestFiles(fx.server.root).includes(ingest.id), 'ingest file removed');
    });
  });
});
