// Limits and access, end to end through the configuration file: maximum
// concurrent ingests, maximum message size, maximum blob size, the socket's
// mode and owner (checked by connecting as other users), and a store whose
// files no other user can read (serve sets umask 077).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { blobPath } from './support/disk';
import { serverFixture } from './support/fixture';
import { CLI } from './support/server';
import { info, md, read, rejectsWith, sha256, writeBlob, WriteSession } from './support/client';

const MiB = 1 << 20;

describe('configured limits', () => {
  // Inherited by the server and fsck: what they create must not depend on the caller's umask.
  process.umask(0);
  const fx = serverFixture({
    config: `[grpc]\nmax_recv_message_size = ${MiB}\n\n[limits]\nmax_active_ingests = 2\nmax_blob_size = ${4 * MiB}\n`,
  });

  test('limits.max_active_ingests: a third concurrent ingest is RESOURCE_EXHAUSTED until one of two ends', async () => {
    const first = new WriteSession(fx.client);
    const second = new WriteSession(fx.client);
    await first.send({ action: WriteAction.STAT, ref: 'one' });
    await second.send({ action: WriteAction.STAT, ref: 'two' });
    const third = new WriteSession(fx.client);
    await rejectsWith(third.send({ action: WriteAction.STAT, ref: 'three' }), 'RESOURCE_EXHAUSTED', /too many ingests in progress \(limit 2\)/);
    await first.close();
    const data = randomBytes(1000);
    assert.equal((await writeBlob(fx.client, 'three', data)).digest, sha256(data));
    await second.close();
  });

  test('grpc.max_recv_message_size: a Write message over it is RESOURCE_EXHAUSTED, smaller ones pass', async () => {
    const session = new WriteSession(fx.client);
    await session.send({ action: WriteAction.STAT, ref: 'big-message' });
    await rejectsWith(session.send({ action: WriteAction.WRITE, offset: 0, data: randomBytes(MiB) }), 'RESOURCE_EXHAUSTED', /larger than max/);
    const data = randomBytes(MiB - 1024);
    assert.equal((await writeBlob(fx.client, 'small-enough', data, { chunk: MiB - 1024 })).digest, sha256(data));
  });

  test('limits.max_blob_size: declared or written past it is RESOURCE_EXHAUSTED, a blob of exactly that size commits', async () => {
    const declared = new WriteSession(fx.client);
    await rejectsWith(declared.send({ action: WriteAction.STAT, ref: 'declared', total: 4 * MiB + 1 }), 'RESOURCE_EXHAUSTED', /exceeds the configured maximum/);

    const written = new WriteSession(fx.client);
    await written.send({ action: WriteAction.STAT, ref: 'grows' });
    const chunk = randomBytes(MiB / 2);
    for (let offset = 0; offset < 4 * MiB; offset += chunk.length) await written.send({ action: WriteAction.WRITE, offset, data: chunk });
    await rejectsWith(written.send({ action: WriteAction.WRITE, offset: 4 * MiB, data: Buffer.alloc(1) }), 'RESOURCE_EXHAUSTED', /exceeds the configured maximum/);

    const exact = randomBytes(4 * MiB);
    assert.equal((await writeBlob(fx.client, 'exact', exact, { chunk: MiB / 2 })).digest, sha256(exact));
    assert.deepEqual((await read(fx.client, sha256(exact))).data, exact);
  });

  test('no file or directory of the store is readable by others, though serve was started with umask 000', async () => {
    // A quarantined blob and a restart add more files.
    const data = randomBytes(1000);
    const victim = randomBytes(1000);
    await writeBlob(fx.client, 'private', data);
    await writeBlob(fx.client, 'victim', victim);
    fx.client.close();
    await fx.server.stop();
    writeFileSync(blobPath(fx.server.root, sha256(victim)), randomBytes(1000));
    const repair = spawnSync(process.execPath, [CLI, 'fsck', '--root', fx.server.root, '--repair'], { encoding: 'utf8' });
    assert.equal(repair.status, 1, repair.stdout + repair.stderr);
    await fx.server.restart();
    const client = fx.reconnect();
    assert.equal((await info(client, sha256(data))).size, data.length);
    const root = fx.server.root;
    const entries = readdirSync(root, { recursive: true, encoding: 'utf8' }).map((path) => join(root, path));
    assert.ok(entries.some((path) => path.endsWith('metadata.db-wal')) && entries.some((path) => path.includes('/quarantine/')));
    for (const path of entries) {
      const stats = statSync(path);
      const mode = stats.mode & 0o777;
      if (stats.isSocket()) assert.equal(mode, 0o660, `${path}: the configured default socket mode`);
      else if (!path.endsWith('config.toml')) assert.equal(mode & 0o077, 0, `${path} is ${mode.toString(8)}`);
    }
  });
});

/** Whether a process running as uid:gid may connect to a unix socket. */
async function canConnect(socket: string, uid: number, gid: number): Promise<string> {
  const script = `require('net').connect(${JSON.stringify(socket)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); });`;
  const child = spawn(process.execPath, ['-e', script], { uid, gid, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  return out.trim();
}

const notRoot = process.getuid?.() !== 0 ? 'changing a socket owner and connecting as other users needs root' : undefined;
if (notRoot && process.env.CI === 'true') throw new Error(`limits: ${notRoot} (required when CI=true)`);

describe('socket access', { skip: notRoot ?? false }, () => {
  const GROUP = 4343;
  const OTHER = 5005;
  // Other users must reach the socket through the root directory, as they would a /run directory.
  const root = mkdtempSync(join(tmpdir(), 'contentd-socket-'));
  chmodSync(root, 0o711);
  const fx = serverFixture({ root, config: `[grpc]\nsocket_mode = "0660"\nuid = 0\ngid = ${GROUP}\n` });

  test('grpc.socket_mode, uid and gid: the socket is root:4343 0660; the group may connect, others may not', async () => {
    const stats = statSync(fx.server.address);
    assert.ok(stats.isSocket());
    assert.deepEqual({ mode: (stats.mode & 0o777).toString(8), uid: stats.uid, gid: stats.gid }, { mode: '660', uid: 0, gid: GROUP });
    assert.equal(await canConnect(fx.server.address, OTHER, GROUP), 'connected');
    assert.equal(await canConnect(fx.server.address, OTHER, OTHER), 'EACCES');
    const data = randomBytes(10);
    assert.equal((await writeBlob(fx.client, 'as-root', data, { metadata: md('socket') })).digest, sha256(data));
  });
});
