// Ingests: Status, ListStatuses, Abort, concurrent writers on one ref and
// hostile refs, checked against metadata.db and <root>/ingest.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { abort, info, listStatuses, md, rejectsWith, sha256, status, toNs, writeBlob, WriteSession } from './support/client';
import { blobOnDisk, ingestFiles, ingestOf } from './support/disk';
import { serverFixture, type Fixture } from './support/fixture';

const { STAT, WRITE } = WriteAction;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Leaves an ingest of `bytes` written bytes behind (the stream half-closes without committing). */
async function stage(fx: Fixture, ref: string, bytes: Buffer, declared: { total?: number; expected?: string } = {}, metadata?: Metadata): Promise<void> {
  const session = new WriteSession(fx.client, metadata);
  await session.send({ action: STAT, ref, ...declared });
  if (bytes.length > 0) await session.send({ action: WRITE, offset: 0, data: bytes });
  await session.close();
}

describe('Status and ListStatuses', () => {
  const fx = serverFixture();

  test('Status of an absent ref is NOT_FOUND', async () => {
    await rejectsWith(status(fx.client, 'nobody'), 'NOT_FOUND');
  });

  test('Status reports offset, declared total and digest, and nanosecond times', async () => {
    const data = randomBytes(4000);
    await stage(fx, 'half', data.subarray(0, 1500), { total: 4000, expected: sha256(data) });
    const got = await status(fx.client, 'half');
    assert.equal(got.ref, 'half');
    assert.equal(got.offset, 1500);
    assert.equal(got.total, 4000);
    assert.equal(got.expected, sha256(data));
    assert.ok(toNs(got.updatedAt) > toNs(got.startedAt), 'updated after it started');
    assert.ok(toNs(got.startedAt) % 1_000_000n !== 0n || toNs(got.updatedAt) % 1_000_000n !== 0n, 'sub-millisecond precision');
  });

  test('Status follows a live writer', async () => {
    const session = new WriteSession(fx.client);
    await session.send({ action: STAT, ref: 'live' });
    await session.send({ action: WRITE, offset: 0, data: randomBytes(10) });
    assert.equal((await status(fx.client, 'live')).offset, 10);
    await session.send({ action: WRITE, offset: 10, data: randomBytes(5) });
    assert.equal((await status(fx.client, 'live')).offset, 15);
    await session.close();
  });

  test('ListStatuses filters on ref with == and ~=', async () => {
    await stage(fx, 'layer-1', randomBytes(1));
    await stage(fx, 'layer-2', randomBytes(2));
    await stage(fx, 'manifest-1', randomBytes(3));
    const refs = async (filters: string[]): Promise<string[]> => (await listStatuses(fx.client, filters)).map((s) => s.ref).sort();
    assert.deepEqual(await refs(['ref==layer-2']), ['layer-2']);
    assert.deepEqual(await refs(['ref~=^layer-']), ['layer-1', 'layer-2']);
    assert.deepEqual(await refs(['ref~=/-1$/']), ['layer-1', 'manifest-1']);
    assert.deepEqual(await refs(['ref==layer-1', 'ref==manifest-1']), ['layer-1', 'manifest-1']);
    assert.deepEqual(await refs(['ref==none']), []);
    const all = await refs([]);
    for (const ref of ['half', 'layer-1', 'layer-2', 'manifest-1']) assert.ok(all.includes(ref), `${ref} listed`);
    const one = (await listStatuses(fx.client, ['ref==layer-2']))[0]!;
    assert.equal(one.offset, 2);
  });

  test('a malformed filter is INVALID_ARGUMENT', async () => {
    for (const filter of ['ref==', 'ref~=(', '==x', 'ref=="open']) {
      await rejectsWith(listStatuses(fx.client, [filter]), 'INVALID_ARGUMENT');
    }
  });

  test('ingests are per namespace', async () => {
    await stage(fx, 'shared-name', randomBytes(7), {}, md('ns-a'));
    assert.equal((await status(fx.client, 'shared-name', md('ns-a'))).offset, 7);
    await rejectsWith(status(fx.client, 'shared-name', md('ns-b')), 'NOT_FOUND');
    assert.deepEqual(await listStatuses(fx.client, ['ref==shared-name'], md('ns-b')), []);
    assert.equal((await listStatuses(fx.client, ['ref==shared-name'], md('ns-a'))).length, 1);
  });
});

describe('Abort', () => {
  const fx = serverFixture();

  test('an absent ref is NOT_FOUND', async () => {
    await rejectsWith(abort(fx.client, 'never'), 'NOT_FOUND');
  });

  test('removes the ingest row and file; the ref starts afresh', async () => {
    await stage(fx, 'doomed', randomBytes(1000));
    const ingest = ingestOf(fx.server.root, 'doomed');
    assert.ok(ingest && ingestFiles(fx.server.root).includes(ingest.id));
    await abort(fx.client, 'doomed');
    await rejectsWith(status(fx.client, 'doomed'), 'NOT_FOUND');
    assert.equal(ingestOf(fx.server.root, 'doomed'), undefined);
    assert.ok(!ingestFiles(fx.server.root).includes(ingest.id), 'ingest file removed');
    await rejectsWith(abort(fx.client, 'doomed'), 'NOT_FOUND');

    const session = new WriteSession(fx.client);
    assert.equal((await session.send({ action: STAT, ref: 'doomed' })).offset, 0);
    session.cancel();
  });
});

describe('concurrent writers and hostile refs', () => {
  const fx = serverFixture();

  test('two writers racing on one ref never mix their bytes', { timeout: 60_000 }, async () => {
    const a = randomBytes(256 * 1024);
    const b = randomBytes(256 * 1024);
    const results = await Promise.allSettled([writeBlob(fx.client, 'race', a, { chunk: 16 * 1024 }), writeBlob(fx.client, 'race', b, { chunk: 16 * 1024 })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.ok(won.length >= 1, 'at least one writer commits');
    for (const [i, r] of results.entries()) {
      const data = i === 0 ? a : b;
      if (r.status === 'fulfilled') {
        assert.equal(r.value.digest, sha256(data));
        assert.deepEqual(blobOnDisk(fx.server.root, sha256(data)), data);
      } else {
        assert.equal((r.reason as { code: number }).code, 14, `loser is UNAVAILABLE: ${String(r.reason)}`);
        await rejectsWith(info(fx.client, sha256(data)), 'NOT_FOUND');
      }
    }
    assert.equal(ingestOf(fx.server.root, 'race'), undefined, 'no ingest left');
  });

  /** Every path under root, relative to it. */
  function tree(root: string): string[] {
    return readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
  }

  test('refs with path traversal, NUL or 100 KiB of characters stay opaque', { timeout: 60_000 }, async () => {
    const parent = dirname(fx.server.root);
    const refs = ['../../etc/passwd', '../outside', '/absolute/path', 'nul\u0000byte', 'x'.repeat(100 * 1024), 'ünïcode/ref:with*glob?'];
    const parentBefore = readdirSync(parent).sort();
    for (const ref of refs) {
      const data = randomBytes(64);
      await stage(fx, ref, data.subarray(0, 20));
      const got = await status(fx.client, ref);
      assert.equal(got.ref, ref, 'the ref round-trips exactly');
      assert.equal(got.offset, 20);
      const ingest = ingestOf(fx.server.root, ref);
      assert.ok(ingest, 'stored under the exact ref');
      assert.match(ingest.id, UUID);
      assert.ok(existsSync(join(fx.server.root, 'ingest', ingest.id)));
      // A NUL-truncated ref is a different ref.
      if (ref.includes('\u0000')) await rejectsWith(status(fx.client, ref.split('\u0000')[0]!), 'NOT_FOUND');
      // Finish half of them, abort the rest.
      if (refs.indexOf(ref) % 2 === 0) {
        assert.equal((await writeBlob(fx.client, ref, data)).digest, sha256(data));
      } else {
        await abort(fx.client, ref);
      }
      // The error echoes the ref, bounded so that it still fits in the call's trailers.
      const err = await rejectsWith(status(fx.client, ref), 'NOT_FOUND');
      assert.ok(err.details.length <= 4096, `details of ${err.details.length} characters`);
    }
    assert.deepEqual(readdirSync(parent).sort(), parentBefore, 'nothing created beside the root');
    for (const path of tree(fx.server.root)) {
      if (path.startsWith('ingest/')) assert.match(path.slice('ingest/'.length), UUID);
      if (path.startsWith('blobs/')) assert.match(path, /^blobs\/sha256(\/[0-9a-f]{64})?$/);
      assert.doesNotMatch(path, /passwd|outside|absolute|byte|xxxx|glob/, `no file is named after a ref: ${path}`);
    }
  });
});
