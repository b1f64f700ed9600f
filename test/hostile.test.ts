// Hostile input: malformed digests and filters, unknown algorithms, negative
// and huge offsets and sizes, oversized messages, a Write stream without a
// ref, streams abandoned midway (cancelled, or their client killed), and
// thousands of concurrent streams. Each gets a clear gRPC error; the server
// never crashes, and its open files and memory come back down.
// (Refs with "/", "..", NUL or 100 KiB of characters: content-ingest.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ReadContentRequest, WriteAction, type ContentClient } from '../generated/containerd/services/content/v1/content';
import { destroySurvivor, startTestServer, type TestServer } from './support/server';
import { call, contentClient, info, list, listStatuses, md, read, rejectsWith, remove, sha256, status, update, writeBlob, WriteSession } from './support/client';
import { blobHandles, CACHED_BLOB_HANDLES, openFds, rssMiB, settle } from './support/proc';
import { rawCall, rawContentClient } from './support/raw';

const HEX = 'ab'.repeat(32);
const MALFORMED_DIGESTS = [
  '',
  'sha256',
  'sha256:',
  `:${HEX}`,
  `sha256:${HEX.slice(1)}`,
  `sha256:${HEX.toUpperCase()}`,
  `sha256:${HEX}\n`,
  `sha256:${HEX}\u0000`,
  'sha256:../../../etc/passwd',
  `md5:${'0'.repeat(32)}`,
  `SHA256:${HEX}`,
  `blake3:${HEX}`,
  `sha256:${'x'.repeat(100 * 1024)}`,
];
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Retries fn while the ref is still locked by a stream the server has not finished closing. */
async function whenUnlocked<T>(fn: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: number }).code !== grpcStatus.UNAVAILABLE || tries > 50) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A protobuf varint field, for integers no typed client would encode. */
function varintField(field: number, value: bigint): Buffer {
  const bytes = [field << 3];
  let v = BigInt.asUintN(64, value);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    bytes.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return Buffer.from(bytes);
}

describe('hostile input', () => {
  let server: TestServer;
  let client: ContentClient;
  const blob = randomBytes(100_000);

  before(async () => {
    server = await startTestServer();
    client = contentClient(server.address);
    await writeBlob(client, 'base', blob, { metadata: md('hostile') });
  });
  after(async () => {
    client.close();
    await destroySurvivor(server);
  });

  test('malformed digests and unknown algorithms: INVALID_ARGUMENT from every method that takes a digest', async () => {
    const ns = md('hostile');
    for (const digest of MALFORMED_DIGESTS) {
      const what = JSON.stringify(digest.slice(0, 40));
      // All five in flight at once; each is checked the moment it is made, so none rejects unwatched.
      for (const attempt of [
        info(client, digest, ns),
        read(client, digest, 0, 0, ns),
        remove(client, digest, ns),
        update(client, digest, { a: 'b' }, undefined, ns),
        writeBlob(client, `bad-expected-${what}`, blob, { metadata: ns, expected: digest || 'x' }),
      ].map((call) => rejectsWith(call, 'INVALID_ARGUMENT'))) {
        const err = await attempt;
        assert.ok(err.details.length <= 4096, `${what}: details of ${err.details.length} characters`);
      }
    }
    // A malformed expected digest at commit, after the bytes are in.
    const session = new WriteSession(client, ns);
    await session.send({ action: WriteAction.STAT, ref: 'bad-at-commit' });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: blob });
    await rejectsWith(session.send({ action: WriteAction.COMMIT, offset: blob.length, expected: 'sha256:nope' }), 'INVALID_ARGUMENT');
    assert.equal((await status(client, 'bad-at-commit', ns)).offset, blob.length, 'the ingest is intact');
  });

  test('malformed filters: INVALID_ARGUMENT from List and ListStatuses', async () => {
    for (const filter of ['digest==', '((', 'labels."unterminated', 'labels.a~=(', ',,']) {
      await rejectsWith(list(client, [filter], md('hostile')), 'INVALID_ARGUMENT');
      await rejectsWith(listStatuses(client, [filter], md('hostile')), 'INVALID_ARGUMENT');
    }
  });

  test('negative and huge offsets and sizes get OUT_OF_RANGE, INVALID_ARGUMENT or FAILED_PRECONDITION', async () => {
    const ns = md('hostile');
    const digest = sha256(blob);
    await rejectsWith(read(client, digest, blob.length + 1, 0, ns), 'OUT_OF_RANGE');
    await rejectsWith(read(client, digest, MAX_SAFE, 1, ns), 'OUT_OF_RANGE');
    assert.deepEqual((await read(client, digest, 10, MAX_SAFE, ns)).data, blob.subarray(10), 'a huge size reads to the end');

    const session = new WriteSession(client, ns);
    await session.send({ action: WriteAction.STAT, ref: 'offsets' });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: blob.subarray(0, 10) });
    await rejectsWith(session.send({ action: WriteAction.WRITE, offset: MAX_SAFE, data: blob.subarray(10, 20) }), 'OUT_OF_RANGE');
    await rejectsWith(new WriteSession(client, ns).send({ action: WriteAction.WRITE, ref: 'negative-offset', offset: -1, data: blob.subarray(10, 20) }), 'INVALID_ARGUMENT');
    await rejectsWith(new WriteSession(client, ns).send({ action: WriteAction.STAT, ref: 'negative-total', total: -5 }), 'INVALID_ARGUMENT');
    const huge = new WriteSession(client, ns);
    await huge.send({ action: WriteAction.STAT, ref: 'huge-total', total: MAX_SAFE });
    await huge.send({ action: WriteAction.WRITE, offset: 0, data: blob.subarray(0, 10) });
    await rejectsWith(huge.send({ action: WriteAction.COMMIT, offset: 10 }), 'FAILED_PRECONDITION', /unexpected commit size 10/);

    // Integers past 2^53 cannot become a number: the request is refused as undecodable (what Go's gRPC does too).
    const raw = rawContentClient(server.address);
    try {
      const request = Buffer.concat([Buffer.from(ReadContentRequest.encode({ digest, offset: 0, size: 0 }).finish()), varintField(2, 1n << 62n)]);
      const outcome = await rawCall(raw, 'read', [request], ns);
      assert.equal(grpcStatus[outcome.code], 'INTERNAL');
      assert.match(outcome.details, /deserializ/);
      const negative = await rawCall(raw, 'read', [Buffer.concat([Buffer.from(ReadContentRequest.encode({ digest, offset: 0, size: 0 }).finish()), varintField(3, -(1n << 62n))])], ns);
      assert.equal(grpcStatus[negative.code], 'INTERNAL');
    } finally {
      raw.close();
    }
    assert.equal((await info(client, digest, ns)).size, blob.length);
  });

  test('a Write stream whose first message has no ref: INVALID_ARGUMENT, whatever the action', async () => {
    for (const action of [WriteAction.STAT, WriteAction.WRITE, WriteAction.COMMIT]) {
      const session = new WriteSession(client, md('hostile'));
      await rejectsWith(session.send({ action, offset: 0, data: blob.subarray(0, 10), expected: sha256(blob.subarray(0, 10)) }), 'INVALID_ARGUMENT', /first message must have a reference/);
    }
    await rejectsWith(new WriteSession(client, md('hostile')).send({ action: 7 as WriteAction, ref: 'unknown-action' }), 'INVALID_ARGUMENT', /unknown write action/);
  });

  test('messages over the size limit: RESOURCE_EXHAUSTED from every kind of method', async () => {
    const big = 'x'.repeat(17 << 20);
    await rejectsWith(info(client, big, md('hostile')), 'RESOURCE_EXHAUSTED');
    await rejectsWith(list(client, [big], md('hostile')), 'RESOURCE_EXHAUSTED');
    await rejectsWith(call(client, client.abort, { ref: big }, md('hostile')), 'RESOURCE_EXHAUSTED');
    await rejectsWith(new WriteSession(client, md('hostile')).send({ action: WriteAction.STAT, ref: big }), 'RESOURCE_EXHAUSTED');
    assert.equal((await info(client, sha256(blob), md('hostile'))).size, blob.length);
  });

  test('streams abandoned midway, cancelled or with their client killed, free their ref, files and memory', async () => {
    const pid = server.process.pid!;
    const ns = md('abandoned');
    const fds = openFds(pid);
    const rss = rssMiB(pid);

    // Cancelled in the middle of a write: the ref is free again and resumes where it stood.
    const data = randomBytes(300_000);
    const cancelled = new WriteSession(client, ns);
    await cancelled.send({ action: WriteAction.STAT, ref: 'cancelled', total: data.length, expected: sha256(data) });
    await cancelled.send({ action: WriteAction.WRITE, offset: 0, data: data.subarray(0, 100_000) });
    cancelled.cancel();
    assert.equal((await whenUnlocked(() => writeBlob(client, 'cancelled', data, { metadata: ns }))).digest, sha256(data));

    // A client process killed with its write stream open, and one with reads it never consumes.
    const killed = spawn(process.execPath, [
      '-e',
      `const { contentClient, md, WriteSession } = require(${JSON.stringify(require.resolve('./support/client'))});
       const c = contentClient(${JSON.stringify(server.address)});
       const s = new WriteSession(c, md('abandoned'));
       s.send({ action: 0, ref: 'killed' }).then(() => s.send({ action: 1, offset: 0, data: Buffer.alloc(5000, 1) })).then(() => {
         for (let i = 0; i < 20; i++) c.read({ digest: ${JSON.stringify(sha256(data))}, offset: 0, size: 0 }, md('abandoned')).pause();
         console.log('ready');
       });`,
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(killed.stdout!, 'data');
    killed.kill('SIGKILL');
    await once(killed, 'exit');
    assert.equal((await status(client, 'killed', ns)).offset, 5000, 'the killed client’s bytes are staged');
    // The dead client's lock goes with its connection: a new writer gets the ref and finds the bytes.
    const resumed = await whenUnlocked(async () => {
      const session = new WriteSession(client, ns);
      assert.equal((await session.send({ action: WriteAction.STAT, ref: 'killed' })).offset, 5000);
      return session;
    });
    await resumed.close();

    const after = await settle(() => openFds(pid), (n) => n <= fds);
    assert.ok(after <= fds, `open files back to ${fds} (now ${after})`);
    assert.ok(rssMiB(pid) < rss + 100, `memory ${rssMiB(pid)} MiB, was ${rss} MiB`);
  });

  test('2000 concurrent Write streams, then 64 reads nobody consumes: bounded files and memory, all released', async () => {
    const pid = server.process.pid!;
    const ns = md('crowd');
    const fds = openFds(pid);
    const clients = Array.from({ length: 8 }, () => contentClient(server.address));
    const sessions = Array.from({ length: 2000 }, (_, i) => new WriteSession(clients[i % clients.length]!, ns));
    await Promise.all(sessions.map((s, i) => s.send({ action: WriteAction.STAT, ref: `crowd-${i}` }).then(() => s.send({ action: WriteAction.WRITE, offset: 0, data: Buffer.alloc(1000, i) }))));
    const peakFds = openFds(pid);
    assert.ok(peakFds <= fds + 2000 + 64, `${peakFds} descriptors for 2000 open ingests (baseline ${fds})`);
    // Half cancel, half end without committing.
    await Promise.all(
      sessions.map((s, i) => {
        if (i % 2 === 1) return s.close();
        s.cancel();
        return s.done.catch(() => undefined);
      }),
    );
    assert.equal((await listStatuses(client, [], ns)).length, 2000, 'every ingest is kept, resumable');

    const big = randomBytes(16 << 20);
    await writeBlob(client, 'big', big, { metadata: ns });
    const rss = rssMiB(pid);
    const reads = Array.from({ length: 64 }, (_, i) => clients[i % clients.length]!.read({ digest: sha256(big), offset: 0, size: 0 }, ns));
    for (const r of reads) {
      r.pause();
      r.on('error', () => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const peakRss = rssMiB(pid);
    // One response in flight per stream (its buffer, its serialized copy, HTTP/2's share): 64 stalled
    // readers of a 16 MiB blob must not cost the 16 buffered responses each that they could.
    assert.ok(peakRss < rss + 64 * 6, `memory with 64 stalled reads: ${peakRss.toFixed(0)} MiB (before them ${rss.toFixed(0)} MiB)`);
    for (const r of reads) r.cancel();
    for (const c of clients) c.close();

    const after = await settle(() => openFds(pid), (n) => n <= fds);
    assert.ok(after <= fds, `open files back to ${fds} (now ${after})`);
    assert.ok(blobHandles(pid) <= CACHED_BLOB_HANDLES);
    assert.equal((await info(client, sha256(big), ns)).size, big.length);
    process.stdout.write(`# hostile: 2000 streams held ${peakFds} descriptors (baseline ${fds}); 64 stalled reads: RSS ${rss.toFixed(0)} -> ${peakRss.toFixed(0)} MiB\n`);
  });
});
