// The standard gRPC health service on the server's socket: SERVING for the
// server and each service once the store is open, NOT_SERVING (and content
// calls UNAVAILABLE) before that, and the `contentd health` probe command.
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkHealth, healthClient } from '../src/cli/health';
import { lockRoot } from '../src/db/root-lock';
import { CONTENT_SERVICE_NAME } from '../src/server/content-service';
import { contentClient, info, sha256 } from './support/client';
import { cli } from './support/cli';
import { startTestServer, type TestServer } from './support/server';

const ABSENT = sha256(Buffer.from('health'));

describe('health service', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.destroy();
  });

  test('reports SERVING for the server and for the content service', async () => {
    assert.deepEqual(await checkHealth(server.address, '', 5000), { status: 'SERVING' });
    assert.deepEqual(await checkHealth(server.address, CONTENT_SERVICE_NAME, 5000), { status: 'SERVING' });
  });

  test('answers NOT_FOUND for a service it does not serve', async () => {
    assert.deepEqual(await checkHealth(server.address, 'containerd.services.images.v1.Images', 5000), { status: 'SERVICE_UNKNOWN' });
  });

  test('contentd health exits 0 and prints SERVING, with --json too', async () => {
    const human = await cli(['health', '--address', server.address]);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout.trim(), 'SERVING');
    const json = await cli(['health', '--address', server.address, '--service', CONTENT_SERVICE_NAME, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { socket: server.address, service: CONTENT_SERVICE_NAME, status: 'SERVING' });
  });
});

describe('health during shutdown', () => {
  test('Watch reports NOT_SERVING as soon as the server begins to stop', async (t) => {
    const server = await startTestServer();
    t.after(() => server.destroy());
    const client = healthClient(server.address);
    t.after(() => client.close());
    const watch = client.Watch({ service: CONTENT_SERVICE_NAME });
    const seen: string[] = [];
    const notServing = new Promise<void>((resolve, reject) => {
      watch.on('data', (res: { status: string }) => {
        seen.push(res.status);
        if (res.status === 'SERVING') server.process.kill('SIGTERM');
        if (res.status === 'NOT_SERVING') resolve();
      });
      watch.on('error', reject);
    });
    await notServing;
    // A watcher must not hold up the shutdown it is told about.
    watch.cancel();
    const [code] = (await once(server.process, 'exit')) as [number | null];
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    assert.equal(code, 0);
  });
});

describe('health during start-up and after shutdown', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'contentd-health-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('NOT_SERVING and UNAVAILABLE until the store is open, then SERVING; unreachable once stopped', async (t) => {
    // An offline command holding the store keeps the server in start-up:
    // listening, but not serving, until the command finishes.
    const lock = lockRoot(root);
    const starting = startTestServer({ root });
    const address = join(root, 'contentd.sock');
    let released = false;
    t.after(() => {
      if (!released) lock.release();
    });
    for (let i = 0; i < 400 && !(await stat(address).then((s) => s.isSocket(), () => false)); i++) await new Promise((r) => setTimeout(r, 25));

    assert.equal((await checkHealth(address, '', 5000)).status, 'NOT_SERVING');
    assert.equal((await checkHealth(address, CONTENT_SERVICE_NAME, 5000)).status, 'NOT_SERVING');
    const client = contentClient(address);
    await assert.rejects(info(client, ABSENT), (e: { code: number; details: string }) => e.code === status.UNAVAILABLE && /starting up/.test(e.details));
    const probe = await cli(['health', '--address', address]);
    assert.equal(probe.code, 1);
    assert.equal(probe.stdout.trim(), 'NOT_SERVING');

    // `health --wait` is what a unit's ExecStartPost or a script waits with.
    const waiting = cli(['health', '--address', address, '--wait', '30']);
    lock.release();
    released = true;
    const server = await starting;
    t.after(() => server.destroy());
    const waited = await waiting;
    assert.equal(waited.code, 0, waited.stdout + waited.stderr);
    assert.equal(waited.stdout.trim(), 'SERVING');
    assert.match(server.output(), /another contentd process holds the store; waiting/);
    await assert.rejects(info(client, ABSENT), (e: { code: number }) => e.code === status.NOT_FOUND);
    client.close();

    await server.stop();
    const down = await cli(['health', '--address', address]);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^UNREACHABLE/);
  });
});
