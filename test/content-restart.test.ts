// Ingests survive the server: a half-written blob resumes after SIGTERM and
// after SIGKILL. Signals shut the server down cleanly, and the socket path is
// guarded at start: a live server is never displaced, a dead one's socket is.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { contentClient, info, read, rejectsWith, sha256, status, WriteSession, writeBlob } from './support/client';
import { blobFileAppears, blobOnDisk, blobPath, ingestOf } from './support/disk';
import { serverFixture } from './support/fixture';
import { run } from './support/process';
import { CLI, startTestServer } from './support/server';

const MiB = 1024 * 1024;

describe('resume after a restart', () => {
  const fx = serverFixture();

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`${signal} with a writer mid-stream: Status reports the offset, a new writer continues and commits`, { timeout: 60_000 }, async () => {
      const data = randomBytes(3 * MiB + 333);
      const half = Math.floor(data.length / 2);
      const ref = `resume-${signal}`;
      const session = new WriteSession(fx.client);
      await session.send({ action: WriteAction.STAT, ref, total: data.length, expected: sha256(data) });
      for (let offset = 0; offset < half; offset += 256 * 1024) {
        await session.send({ action: WriteAction.WRITE, offset, data: data.subarray(offset, Math.min(offset + 256 * 1024, half)) });
      }
      // The stream stays open: the server goes away under a live writer.
      await fx.server.restart(signal);
      await assert.rejects(session.done, 'the interrupted stream fails');
      const client = fx.reconnect();

      const got = await status(client, ref);
      assert.equal(got.offset, half);
      assert.equal(got.total, data.length);
      assert.equal(got.expected, sha256(data));
      const ingest = ingestOf(fx.server.root, ref);
      assert.ok(ingest, 'the ingest row survived');
      assert.deepEqual(readFileSync(join(fx.server.root, 'ingest', ingest.id)), data.subarray(0, half), 'acknowledged bytes are on disk');

      const resumed = new WriteSession(client);
      assert.equal((await resumed.send({ action: WriteAction.STAT, ref })).offset, half);
      await resumed.send({ action: WriteAction.WRITE, offset: half, data: data.subarray(half) });
      const committed = await resumed.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) });
      await resumed.close();
      assert.equal(committed.digest, sha256(data));
      assert.equal((await info(client, committed.digest)).size, data.length);
      assert.equal(sha256((await read(client, committed.digest)).data), sha256(data), 'the blob verifies');
      assert.deepEqual(blobOnDisk(fx.server.root, committed.digest), data);
      assert.equal(ingestOf(fx.server.root, ref), undefined);
    });
  }

  test('committed content and labels survive SIGKILL', { timeout: 60_000 }, async () => {
    const data = randomBytes(1000);
    await writeBlob(fx.client, 'durable', data, { labels: { keep: 'me' } });
    await fx.server.restart('SIGKILL');
    const client = fx.reconnect();
    assert.deepEqual((await info(client, sha256(data))).labels, { keep: 'me' });
    assert.deepEqual((await read(client, sha256(data))).data, data);
  });

  test('SIGKILL between the last WRITE and COMMIT: the early-published name is removed at start, the ingest resumes at its end and commits', { timeout: 60_000 }, async () => {
    const data = randomBytes(MiB + 77);
    const digest = sha256(data);
    const session = new WriteSession(fx.client);
    await session.send({ action: WriteAction.STAT, ref: 'early-kill', total: data.length, expected: digest });
    await session.send({ action: WriteAction.WRITE, offset: 0, data });
    await blobFileAppears(fx.server.root, digest);
    await fx.server.restart('SIGKILL');
    await assert.rejects(session.done, 'the interrupted stream fails');
    const client = fx.reconnect();
    assert.equal(blobOnDisk(fx.server.root, digest), undefined, 'start-up reconciliation removed the name');
    await rejectsWith(info(client, digest), 'NOT_FOUND');
    const resumed = new WriteSession(client);
    assert.equal((await resumed.send({ action: WriteAction.STAT, ref: 'early-kill' })).offset, data.length);
    assert.equal((await resumed.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: digest })).digest, digest);
    await resumed.close();
    assert.deepEqual((await read(client, digest)).data, data);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
  });

  test('a blob name without a row, its bytes never synced, is removed at start and the digest commits again', { timeout: 60_000 }, async () => {
    // What power loss between a commit's link and its fsyncs can leave: the
    // name on disk, the bytes not (here: zeros), the row never written.
    const data = randomBytes(5000);
    const digest = sha256(data);
    await mkdir(dirname(blobPath(fx.server.root, digest)), { recursive: true });
    await writeFile(blobPath(fx.server.root, digest), Buffer.alloc(data.length));
    await fx.server.restart('SIGKILL');
    const client = fx.reconnect();
    assert.equal(blobOnDisk(fx.server.root, digest), undefined, 'start-up reconciliation removed the name');
    await rejectsWith(info(client, digest), 'NOT_FOUND');
    await writeBlob(client, 'after-power-loss', data);
    assert.deepEqual((await read(client, digest)).data, data);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
  });
});

describe('shutdown and the socket', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} stops cleanly with exit code 0 and the next start serves`, { timeout: 60_000 }, async () => {
      const server = await startTestServer();
      try {
        const exited = new Promise<number | null>((resolve) => server.process.once('exit', (code) => resolve(code)));
        await server.stop(signal);
        assert.equal(await exited, 0, server.output());
        assert.match(server.output(), /stopped/);
        // Either the socket is gone or the next start treats it as stale.
        if (existsSync(server.address)) assert.ok((await stat(server.address)).isSocket());
        await server.restart();
        const data = randomBytes(10);
        const client = contentClient(server.address);
        try {
          assert.equal((await writeBlob(client, 'after-restart', data)).digest, sha256(data));
        } finally {
          client.close();
        }
      } finally {
        await server.destroy();
      }
    });
  }

  test('a second server on a live socket fails clearly and leaves the first serving', { timeout: 60_000 }, async () => {
    const first = await startTestServer();
    const otherRoot = await mkdtemp(join(tmpdir(), 'contentd-test-'));
    try {
      const second = await run(process.execPath, [CLI, 'serve', '--root', otherRoot, '--address', first.address], { timeoutMs: 30_000 });
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, /already listening/);
      assert.ok((await stat(first.address)).isSocket(), 'the live socket is untouched');
      const client = contentClient(first.address);
      try {
        const data = randomBytes(10);
        assert.equal((await writeBlob(client, 'still-serving', data)).digest, sha256(data));
      } finally {
        client.close();
      }
    } finally {
      await first.destroy();
      await rm(otherRoot, { recursive: true, force: true });
    }
  });

  test('a stale socket left by a killed server is replaced at start', { timeout: 60_000 }, async () => {
    const server = await startTestServer();
    try {
      await server.stop('SIGKILL');
      assert.ok((await stat(server.address)).isSocket(), 'SIGKILL leaves the socket file behind');
      await server.restart();
      assert.match(server.output(), /serving/);
      const client = contentClient(server.address);
      try {
        await rejectsWith(info(client, sha256(Buffer.from('none'))), 'NOT_FOUND');
      } finally {
        client.close();
      }
    } finally {
      await server.destroy();
    }
  });

  test('a regular file at the socket path is refused and left alone', { timeout: 60_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'contentd-test-'));
    try {
      const address = join(root, 'not-a-socket');
      await writeFile(address, 'precious');
      const res = await run(process.execPath, [CLI, 'serve', '--root', join(root, 'store'), '--address', address], { timeoutMs: 30_000 });
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /not a socket/);
      assert.equal(await readFile(address, 'utf8'), 'precious');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
