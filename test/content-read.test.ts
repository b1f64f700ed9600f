// Read offsets and sizes, response chunking and message size limits, as
// containerd's content service defines them.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { credentials } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { ContentClient, WriteAction, WriteContentRequest } from '../generated/containerd/services/content/v1/content';
import { info, read, rejectsWith, sha256, WriteSession, writeBlob } from './support/client';
import { blobOnDisk } from './support/disk';
import { serverFixture } from './support/fixture';

const KiB = 1024;
const MiB = 1024 * KiB;
/** containerd's default gRPC message limit, which contentd's defaults match. */
const MAX_MESSAGE = 16 * MiB;

describe('Read', () => {
  const fx = serverFixture();
  const small = randomBytes(1000);
  const big = randomBytes(5 * MiB + 123);
  let smallDigest = '';
  let bigDigest = '';

  before(async () => {
    smallDigest = (await writeBlob(fx.client, 'small', small)).digest;
    bigDigest = (await writeBlob(fx.client, 'big', big)).digest;
    assert.equal(smallDigest, sha256(small));
    assert.deepEqual(blobOnDisk(fx.server.root, bigDigest), big);
  });

  test('size 0 reads to the end, from any offset', async () => {
    assert.deepEqual((await read(fx.client, smallDigest)).data, small);
    assert.deepEqual((await read(fx.client, smallDigest, 10)).data, small.subarray(10));
    assert.deepEqual((await read(fx.client, smallDigest, 999)).data, small.subarray(999));
  });

  test('offset and size select a range', async () => {
    assert.deepEqual((await read(fx.client, smallDigest, 0, 1)).data, small.subarray(0, 1));
    assert.deepEqual((await read(fx.client, smallDigest, 100, 200)).data, small.subarray(100, 300));
    assert.deepEqual((await read(fx.client, bigDigest, 3 * MiB - 7, 2 * MiB)).data, big.subarray(3 * MiB - 7, 5 * MiB - 7));
  });

  test('offset + size past the end is clipped to the end', async () => {
    assert.deepEqual((await read(fx.client, smallDigest, 900, 500)).data, small.subarray(900));
    assert.deepEqual((await read(fx.client, smallDigest, 0, 1 << 30)).data, small);
  });

  test('offset == size gives no data; offset > size is OUT_OF_RANGE', async () => {
    const { data } = await read(fx.client, smallDigest, small.length);
    assert.equal(data.length, 0);
    assert.equal((await read(fx.client, smallDigest, small.length, 10)).data.length, 0);
    await rejectsWith(read(fx.client, smallDigest, small.length + 1), 'OUT_OF_RANGE');
    await rejectsWith(read(fx.client, smallDigest, 1 << 30, 1), 'OUT_OF_RANGE');
  });

  test('negative offset and size behave as containerd: from the start, to the end', async () => {
    assert.deepEqual((await read(fx.client, smallDigest, -5)).data, small);
    assert.deepEqual((await read(fx.client, smallDigest, 10, -1)).data, small.subarray(10));
  });

  test('absent content is NOT_FOUND, a malformed digest INVALID_ARGUMENT', async () => {
    await rejectsWith(read(fx.client, sha256(Buffer.from('absent'))), 'NOT_FOUND');
    await rejectsWith(read(fx.client, 'sha256:1234'), 'INVALID_ARGUMENT');
    await rejectsWith(read(fx.client, `md5:${'a'.repeat(32)}`), 'INVALID_ARGUMENT');
  });

  test('a 5 MiB blob arrives in several chunks above 32 KiB and within 4 MiB', async () => {
    const { data, messages } = await read(fx.client, bigDigest);
    assert.deepEqual(data, big);
    assert.ok(messages.length >= 2, `${messages.length} messages`);
    let offset = 0;
    for (const [i, m] of messages.entries()) {
      assert.equal(m.offset, offset, 'message offsets are contiguous');
      assert.ok(m.data.length <= 4 * MiB, `message ${i} has ${m.data.length} bytes`);
      if (i < messages.length - 1) assert.ok(m.data.length > 32 * KiB, `message ${i} has ${m.data.length} bytes`);
      offset += m.data.length;
    }
  });

  test('concurrent reads on one connection each get their own bytes (read buffers are reused only once written)', async () => {
    const blobs = Array.from({ length: 8 }, () => randomBytes(40 * KiB));
    for (const [i, data] of blobs.entries()) await writeBlob(fx.client, `concurrent-${i}`, data);
    const reads = Array.from({ length: 400 }, async (_, i) => {
      const data = blobs[i % blobs.length]!;
      const offset = (i * 97) % 1000;
      const got = await read(fx.client, sha256(data), offset, 32 * KiB);
      assert.ok(got.data.equals(data.subarray(offset, offset + 32 * KiB)), `read ${i} returned another read's bytes`);
    });
    await Promise.all(reads);
  });

  test("a client with gRPC's default 4 MiB receive limit reads the 5 MiB blob", async () => {
    const plain = new ContentClient(`unix:${fx.server.address}`, credentials.createInsecure());
    try {
      assert.deepEqual((await read(plain, bigDigest)).data, big);
    } finally {
      plain.close();
    }
  });
});

describe('Write message size', () => {
  const fx = serverFixture();

  /** A WRITE whose encoded protobuf message is exactly `bytes` long. */
  function writeOfSize(bytes: number): WriteContentRequest {
    const req = (n: number): WriteContentRequest => ({ action: WriteAction.WRITE, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(n, 7), labels: {} });
    const overhead = WriteContentRequest.encode(req(bytes)).finish().length - bytes;
    const exact = req(bytes - overhead);
    assert.equal(WriteContentRequest.encode(exact).finish().length, bytes);
    return exact;
  }

  test('a 16 MiB Write message is accepted and committed', async () => {
    const message = writeOfSize(MAX_MESSAGE);
    const session = new WriteSession(fx.client);
    await session.send({ action: WriteAction.STAT, ref: 'sixteen' });
    const written = await session.send(message);
    assert.equal(written.offset, message.data.length);
    const committed = await session.send({ action: WriteAction.COMMIT, offset: message.data.length, expected: sha256(message.data) });
    await session.close();
    assert.equal(committed.digest, sha256(message.data));
    assert.equal((await info(fx.client, committed.digest)).size, message.data.length);
    assert.deepEqual(blobOnDisk(fx.server.root, committed.digest), message.data);
  });

  test('a message one byte over the limit is RESOURCE_EXHAUSTED and the server stays up', async () => {
    const session = new WriteSession(fx.client);
    await session.send({ action: WriteAction.STAT, ref: 'too-big' });
    await rejectsWith(session.send(writeOfSize(MAX_MESSAGE + 1)), 'RESOURCE_EXHAUSTED');
    const data = randomBytes(100);
    assert.equal((await writeBlob(fx.client, 'after', data)).digest, sha256(data));
  });
});
