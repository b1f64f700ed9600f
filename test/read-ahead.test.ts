// Large reads are read one piece ahead (src/blobs/read-ahead.ts): containerd's
// proxy asks for a blob one ReadAt at a time, and the next piece should be
// off the disk before it is asked for. The first two suites run a real
// server (the first watches its preads with strace); the last drives the
// read-ahead itself over real files.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, read as readCallback, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ReadAhead, type ReadAheadFile } from '../src/blobs/read-ahead';
import { contentClient, read, writeBlob } from './support/client';
import { serverFixture } from './support/fixture';
import { waitFor } from './support/process';
import { Strace, straceSkip } from './support/strace';

const MiB = 1 << 20;
const readFd = promisify(readCallback);

/** Offsets of the server's 1 MiB preads of the blob file named hex, in trace order. */
function piecePreads(trace: string, hex: string): number[] {
  return [...trace.matchAll(/pread64\(\d+<([^>]*)>, .*, (\d+), (\d+)\) = \d+$/gm)]
    .filter((m) => m[1]!.endsWith(`/blobs/sha256/${hex}`) && Number(m[2]) === MiB)
    .map((m) => Number(m[3]));
}

describe('read-ahead in the server', { skip: straceSkip('read-ahead') }, () => {
  const fx = serverFixture();

  test('the next 1 MiB piece is read from disk before the client asks for it, and each piece only once', async () => {
    const data = randomBytes(4 * MiB);
    const { digest } = await writeBlob(fx.client, 'ahead', data);
    const hex = digest.slice('sha256:'.length);
    const file = `${fx.server.root}.strace`;
    const strace = await Strace.attach(fx.server.process.pid!, file, ['-e', 'trace=pread64'], () => read(fx.client, digest, 0, 1));
    try {
      const pieces: Buffer[] = [(await read(fx.client, digest, 0, MiB)).data];
      // Before the second ReadAt is sent, its piece is already being read.
      await waitFor(
        async () => (piecePreads(readFileSync(file, 'utf8'), hex).includes(MiB) ? true : undefined),
        5000,
        () => `no pread at offset 1 MiB after the first piece: ${piecePreads(readFileSync(file, 'utf8'), hex).join(', ')}`,
      );
      for (let offset = MiB; offset < data.length; offset += MiB) pieces.push((await read(fx.client, digest, offset, MiB)).data);
      assert.deepEqual(Buffer.concat(pieces), data);
    } finally {
      const { lines } = await strace.stop();
      assert.deepEqual(piecePreads(lines.join('\n'), hex), [0, MiB, 2 * MiB, 3 * MiB]);
    }
  });
});

describe('read-ahead with many readers at once', () => {
  const fx = serverFixture();

  test('readers of the same and of different blobs, more than there are slots, each get their own bytes', async () => {
    const blobs = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const data = randomBytes(6 * MiB + 123);
        return { data, digest: (await writeBlob(fx.client, `many-${i}`, data)).digest };
      }),
    );
    const clients = [fx.client, contentClient(fx.server.address), contentClient(fx.server.address)];
    try {
      // 12 readers, each reading a whole blob from its own starting piece onwards, wrapping round, as containerd's proxy does: one ReadAt at a time.
      await Promise.all(
        Array.from({ length: 12 }, async (_, reader) => {
          const { data, digest } = blobs[reader % 3]!;
          const client = clients[reader % clients.length]!;
          const pieces = Math.ceil(data.length / MiB);
          for (let step = 0; step < pieces; step++) {
            const offset = (((reader % 4) + step) % pieces) * MiB;
            const got = (await read(client, digest, offset, MiB)).data;
            assert.ok(got.equals(data.subarray(offset, offset + MiB)), `reader ${reader}: wrong bytes at ${offset}`);
          }
        }),
      );
    } finally {
      for (const client of clients.slice(1)) client.close();
    }
  });
});

/** A real file of random bytes, read through a descriptor; counts its reads. */
function fileOf(dir: string, name: string, size: number): { file: ReadAheadFile; data: Buffer; reads: number[]; close(): void } {
  const data = randomBytes(size);
  const path = join(dir, name);
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  const reads: number[] = [];
  const file: ReadAheadFile = {
    size,
    readAt: async (buffer, position, length) => {
      reads.push(position);
      return (await readFd(fd, buffer, 0, length, position)).bytesRead;
    },
  };
  return { file, data, reads, close: () => closeSync(fd) };
}

describe('ReadAhead', () => {
  const dir = mkdtempSync(join(tmpdir(), 'contentd-read-ahead-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  test('two readers of one file at different places each have their next piece read ahead, no piece read twice for one reader', async () => {
    const one = fileOf(dir, 'one', 8 * 256 * 1024 + 1000);
    const ahead = new ReadAhead();
    const got = [Buffer.alloc(one.file.size), Buffer.alloc(one.file.size)];
    const starts = [0, 4 * 256 * 1024];
    for (let step = 0; step < 5; step++) {
      for (const [i, start] of starts.entries()) {
        const position = start + step * 256 * 1024;
        await ahead.read(one.file, got[i]!.subarray(position), position, 256 * 1024);
      }
    }
    const second = starts[1]!;
    assert.ok(got[0]!.subarray(0, 5 * 256 * 1024).equals(one.data.subarray(0, 5 * 256 * 1024)));
    assert.ok(got[1]!.subarray(second).equals(one.data.subarray(second)), 'the second reader, to the short last piece');
    // Each piece a reader asked for was read once (4 and 5 once for each reader), and one ahead of the first
    // reader's last; nothing past the end.
    assert.deepEqual(
      [...one.reads].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8].map((i) => i * 256 * 1024),
    );
    one.close();
  });

  test('memory held for reading ahead stays within its slots however many files are read', async () => {
    const files = Array.from({ length: 24 }, (_, i) => fileOf(dir, `many-${i}`, 2 * MiB));
    const targets = files.map(() => Buffer.alloc(2 * MiB));
    const ahead = new ReadAhead({ slots: 4 });
    const before = process.memoryUsage().arrayBuffers;
    // Each file's first piece asks for its second to be read ahead: 24 pieces wanted, 4 slots to hold them.
    for (const [i, f] of files.entries()) await ahead.read(f.file, targets[i]!, 0, MiB);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const held = process.memoryUsage().arrayBuffers - before;
    assert.ok(held <= 5 * MiB, `${(held / MiB).toFixed(1)} MiB held for 4 slots of 1 MiB`);
    for (const [i, f] of files.entries()) await ahead.read(f.file, targets[i]!.subarray(MiB), MiB, MiB);
    for (const [i, f] of files.entries()) assert.ok(targets[i]!.equals(f.data), `file ${i} read back wrong`);
    for (const f of files) f.close();
  });

  test('a read elsewhere than the start is read ahead only once a read continues where it ended', async () => {
    const one = fileOf(dir, 'random', 8 * MiB);
    const ahead = new ReadAhead();
    const buffer = Buffer.alloc(MiB);
    await ahead.read(one.file, buffer, 5 * MiB, MiB);
    await ahead.read(one.file, buffer, 2 * MiB, MiB);
    assert.deepEqual(one.reads, [5 * MiB, 2 * MiB], 'random reads: nothing read ahead');
    await ahead.read(one.file, buffer, 3 * MiB, MiB);
    assert.ok(buffer.equals(one.data.subarray(3 * MiB, 4 * MiB)));
    await ahead.forget(one.file);
    assert.deepEqual(one.reads, [5 * MiB, 2 * MiB, 3 * MiB, 4 * MiB], 'the read at 3 MiB continued the one at 2 MiB');
    one.close();
  });

  test('pieces over 1 MiB (more than contentd puts in one Read message) are not read ahead', async () => {
    const one = fileOf(dir, 'large-pieces', 6 * MiB);
    const ahead = new ReadAhead();
    const buffer = Buffer.alloc(2 * MiB);
    assert.equal(await ahead.read(one.file, buffer, 0, 2 * MiB), 2 * MiB);
    assert.equal(await ahead.read(one.file, buffer, 2 * MiB, 2 * MiB), 2 * MiB);
    assert.ok(buffer.equals(one.data.subarray(2 * MiB, 4 * MiB)));
    await ahead.forget(one.file);
    assert.deepEqual(one.reads, [0, 2 * MiB], 'each piece read when asked for, nothing ahead');
    one.close();
  });

  test('a failed read ahead is not reported by itself: the read that wants the piece meets the error', async () => {
    const one = fileOf(dir, 'failing', 3 * MiB);
    const file: ReadAheadFile = {
      size: one.file.size,
      readAt: (buffer, position, length) => (position >= MiB ? Promise.reject(new Error('EIO')) : one.file.readAt(buffer, position, length)),
    };
    const ahead = new ReadAhead();
    const buffer = Buffer.alloc(MiB);
    assert.equal(await ahead.read(file, buffer, 0, MiB), MiB);
    assert.ok(buffer.equals(one.data.subarray(0, MiB)));
    // The read ahead of the second piece has failed by now, unhandled rejections being fatal to this process.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(ahead.read(file, buffer, MiB, MiB), /EIO/);
    one.close();
  });

  test('forget waits for a read ahead still running, so the descriptor outlives it', async () => {
    const one = fileOf(dir, 'slow', 2 * MiB);
    let finish: () => void = () => undefined;
    const file: ReadAheadFile = {
      size: one.file.size,
      readAt: async (buffer, position, length) => {
        if (position > 0) await new Promise<void>((resolve) => (finish = resolve));
        return one.file.readAt(buffer, position, length);
      },
    };
    const ahead = new ReadAhead();
    await ahead.read(file, Buffer.alloc(MiB), 0, MiB);
    let forgotten = false;
    const forgetting = ahead.forget(file).then(() => (forgotten = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(forgotten, false, 'forget returned while the read ahead was running');
    finish();
    await forgetting;
    assert.deepEqual(one.reads, [0, MiB]);
    one.close();
  });
});
