// A full disk: the root lives on a 32 MiB tmpfs made for the test. ENOSPC
// while writing, and SQLite's "database or disk is full" at commit and at the
// start of an ingest, reach the client as RESOURCE_EXHAUSTED; nothing partial
// is committed, reads go on, and the same ingests complete once space is freed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { assertConsistentRoot } from './support/consistency';
import { ingestOf, blobPath } from './support/disk';
import { startTestServer, type TestServer } from './support/server';
import { contentClient, info, list, md, read, rejectsWith, sha256, status, writeBlob, WriteSession } from './support/client';

/** Mounting needs root; CI runs as root, so there a failure to mount fails the test. */
function tmpfsMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const probe = mkdtempSync(join(tmpdir(), 'contentd-tmpfs-probe-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
  if (mount.status === 0) spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return mount.status === 0 ? undefined : `cannot mount a tmpfs: ${mount.stderr.trim() || mount.error?.message}`;
}
const missing = tmpfsMissing();
if (missing && process.env.CI === 'true') throw new Error(`disk-full: ${missing} (required when CI=true)`);

const NS = md('full');

/** Fills the filesystem holding path to the last byte it will take; returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, 'a');
  let written = 0;
  try {
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

describe('disk full', { skip: missing ?? false }, () => {
  let mountpoint: string;
  let server: TestServer;
  let filler: string;
  const kept = randomBytes(200_000);

  before(async () => {
    mountpoint = mkdtempSync(join(tmpdir(), 'contentd-full-'));
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', mountpoint], { encoding: 'utf8' });
    assert.equal(mount.status, 0, mount.stderr);
    filler = join(mountpoint, 'filler');
    server = await startTestServer({ root: join(mountpoint, 'root') });
    const client = contentClient(server.address);
    await writeBlob(client, 'kept', kept, { metadata: NS });
    client.close();
  });
  after(async () => {
    await server?.stop();
    spawnSync('umount', [mountpoint]);
    rmSync(mountpoint, { recursive: true, force: true });
  });

  /** Reads and listings must go on whatever writes fail. */
  async function assertStillServing(): Promise<void> {
    assert.equal(server.process.exitCode, null, 'the server is still running');
    const client = contentClient(server.address);
    try {
      assert.deepEqual((await read(client, sha256(kept), 0, 0, NS)).data, kept);
      assert.ok((await list(client, [], NS)).some((i) => i.digest === sha256(kept)));
    } finally {
      client.close();
    }
  }

  /** Fills the disk but for `free` bytes, then writes 4 MiB in `chunk`-byte Write requests to ref. */
  async function enospcMidWrite(ref: string, chunk: number, free: number): Promise<void> {
    const data = randomBytes(4 << 20);
    fill(filler);
    truncateSync(filler, statSync(filler).size - free);
    const client = contentClient(server.address);
    const session = new WriteSession(client, NS);
    let acknowledged = 0;
    const failure = await (async () => {
      try {
        await session.send({ action: WriteAction.STAT, ref, total: data.length, expected: sha256(data) });
        for (let offset = 0; offset < data.length; offset += chunk) {
          const res = await session.send({ action: WriteAction.WRITE, offset, data: data.subarray(offset, offset + chunk) });
          acknowledged = res.offset;
        }
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    assert.ok(failure, 'the write failed');
    await rejectsWith(Promise.reject(failure), 'RESOURCE_EXHAUSTED', /no space left/);
    assert.ok(acknowledged > 0 && acknowledged < data.length, `some chunks were written before the disk filled (${acknowledged})`);
    // The staged file holds exactly what the client was told it holds.
    const staged = ingestOf(server.root, ref, 'full')!;
    assert.equal(statSync(join(server.root, 'ingest', staged.id)).size, acknowledged);
    assert.equal((await status(client, ref, NS)).offset, acknowledged);
    await assertStillServing();

    rmSync(filler);
    await writeBlob(client, ref, data, { metadata: NS });
    assert.deepEqual((await read(client, sha256(data), 0, 0, NS)).data, data);
    client.close();
    assertConsistentRoot(server.root);
  }

  test('ENOSPC in the middle of a write: RESOURCE_EXHAUSTED, the ingest keeps what was acknowledged and resumes once space is freed', async () => {
    await enospcMidWrite('big', 256 << 10, 1 << 20);
  });

  test('the same with 1 MiB writes, each written as parallel parts: the parts that fit do not outlast the failure', async () => {
    // 2.5 MiB free: the third write fails half-way, some of its parts landing and some not.
    await enospcMidWrite('big-parallel', 1 << 20, (5 << 20) / 2);
  });

  test('a full disk at commit: SQLite fails cleanly, nothing is committed, the ingest commits once space is freed', async () => {
    const data = randomBytes(1 << 20);
    const client = contentClient(server.address);
    const session = new WriteSession(client, NS);
    await session.send({ action: WriteAction.STAT, ref: 'late', total: data.length, expected: sha256(data) });
    await session.send({ action: WriteAction.WRITE, offset: 0, data });
    fill(filler);
    await rejectsWith(session.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) }), 'RESOURCE_EXHAUSTED', /full/);
    await rejectsWith(info(client, sha256(data), NS), 'NOT_FOUND');
    assert.ok(!existsSync(blobPath(server.root, sha256(data))), 'the published file was taken back out');
    // A new ingest cannot even record itself: that too is a clean RESOURCE_EXHAUSTED.
    const other = randomBytes(1000);
    await rejectsWith(writeBlob(client, 'refused', other, { metadata: NS }), 'RESOURCE_EXHAUSTED');
    await assertStillServing();

    rmSync(filler);
    const resumed = new WriteSession(client, NS);
    const stat = await resumed.send({ action: WriteAction.STAT, ref: 'late', total: data.length, expected: sha256(data) });
    assert.equal(stat.offset, data.length, 'the ingest kept its bytes');
    await resumed.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) });
    await resumed.close();
    assert.deepEqual((await read(client, sha256(data), 0, 0, NS)).data, data);
    await writeBlob(client, 'refused', other, { metadata: NS });
    client.close();
    assertConsistentRoot(server.root);
  });
});
