// Real containerd on this store, end to end: a private containerd (root,
// state and sockets in a temp dir) whose built-in content store is disabled
// and whose content proxy plugin is a contentd server, configured with the
// output of `contentd containerd-config`. Everything is driven with ctr and
// checked against the server's files and SQLite rows. Unix sockets and
// 127.0.0.1 only; nothing is downloaded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { sha256 } from './support/client';
import { conformanceMissing } from './support/conformance';
import { assertImageComplete, containerdMissing, contentdSnippet, parsePlugins, startContainerd, type Containerd } from './support/containerd';
import { blobOnDisk, ingestRows } from './support/disk';
import { assertContentSuiteThroughContainerd, assertExportHolds, buildHarnessInBackground } from './support/e2e';
import { buildOciImage, type OciImage } from './support/oci-image';
import { exitOf, waitFor } from './support/process';
import { registryMissing, startRegistry, type Registry } from './support/registry';
import { startTestServer, type TestServer } from './support/server';
import { ABSENT, assertHoldsBlobs, stored } from './support/store-state';

const missing = containerdMissing() ?? registryMissing() ?? conformanceMissing();
if (missing && process.env.CI === 'true') throw new Error(`e2e-containerd: ${missing} (required when CI=true)`);

const NS = 'e2e';
const MiB = 1 << 20;

/** Refs in the output of `ctr content active`. */
function parseActive(out: string): string[] {
  return out.split('\n').slice(1).map((line) => line.split('\t')[0]!).filter(Boolean);
}

async function activeRefs(containerd: Containerd): Promise<string[]> {
  return parseActive(await containerd.ctrOk(['content', 'active'], { namespace: NS }));
}

/** Digest → labels column of `ctr content ls`. */
async function contentList(containerd: Containerd): Promise<Map<string, string>> {
  const out = await containerd.ctrOk(['content', 'ls'], { namespace: NS });
  return new Map(
    out
      .split('\n')
      .slice(1)
      .map((line) => line.split('\t').filter(Boolean))
      .filter((cols) => cols.length >= 2)
      .map((cols) => [cols[0]!, cols[cols.length - 1]!]),
  );
}

/** Bytes the server has staged for the ingest whose (containerd-prefixed) ref ends with ref, once it exists. */
function stagedBytes(root: string, ref: string): number | undefined {
  const row = ingestRows(root).find((r) => r.ref.endsWith(`/${ref}`));
  const path = row && join(root, 'ingest', row.id);
  return path && existsSync(path) ? statSync(path).size : undefined;
}

describe('containerd on contentd, end to end', { skip: missing ? `containerd e2e skipped: ${missing}` : false, timeout: 15 * 60_000 }, () => {
  let work = '';
  let server: TestServer;
  let containerd: Containerd;
  let image: OciImage;
  let registry: Registry | undefined;
  let pushed = '';
  let harness: Promise<string>;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'contentd-e2e-'));
    harness = buildHarnessInBackground(work);
    server = await startTestServer();
    containerd = await startContainerd({ dir: join(work, 'containerd'), contentProxy: await contentdSnippet(server) });
    image = await buildOciImage({ dir: join(work, 'image'), layers: 3, layerSize: 12 * MiB });
  });

  after(async () => {
    await containerd?.stop();
    await registry?.stop();
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('containerd-config makes contentd the only content plugin', async () => {
    // Plain objects, for deepEqual (smol-toml's tables have no prototype).
    const config = JSON.parse(JSON.stringify(parse(await contentdSnippet(server)))) as Record<string, unknown>;
    assert.equal(config.version, 2);
    assert.deepEqual(config.disabled_plugins, ['io.containerd.content.v1.content']);
    assert.deepEqual(config.proxy_plugins, { contentd: { type: 'content', address: server.address } });

    const plugins = parsePlugins(await containerd.ctrOk(['plugins', 'ls'])).filter((p) => p.type === 'io.containerd.content.v1');
    assert.deepEqual(plugins, [{ type: 'io.containerd.content.v1', id: 'contentd', status: 'ok' }]);
  });

  test('ctr images import unpacks an OCI archive into the store; export gives back the same blobs', async () => {
    assert.ok(image.size > 20 * MiB && image.layers.length >= 3, `image too small: ${image.size} bytes`);
    await containerd.ctrOk(['images', 'import', '--snapshotter', containerd.snapshotter, image.archive], { namespace: NS });
    await assertImageComplete(containerd, image.name, NS);
    await assertHoldsBlobs(server.root, image.blobs);

    await assertExportHolds(containerd, image.name, NS, join(work, 'exported.tar'), image.blobs);
  });

  test('ctr images push to a registry, pull into a second containerd on its own contentd', async () => {
    registry = await startRegistry(join(work, 'registry'));
    pushed = `${registry.host}/contentd/e2e:latest`;
    await containerd.ctrOk(['images', 'tag', image.name, pushed], { namespace: NS });
    await containerd.ctrOk(['images', 'push', '--plain-http', pushed], { namespace: NS });

    // One contentd root per containerd: each containerd's collector deletes what its own database doesn't know.
    const server2 = await startTestServer();
    const containerd2 = await startContainerd({ dir: join(work, 'containerd2'), contentProxy: await contentdSnippet(server2) });
    try {
      await containerd2.ctrOk(['images', 'pull', '--plain-http', '--snapshotter', containerd2.snapshotter, pushed], { namespace: NS });
      await assertImageComplete(containerd2, pushed, NS);
      await assertHoldsBlobs(server2.root, image.blobs);
    } finally {
      await containerd2.stop();
      await server2.destroy();
    }
  });

  test('ctr content ingest, active, ls, get, label and rm go through to contentd', async () => {
    const data = randomBytes(3 * MiB);
    const digest = sha256(data);
    const ingest = containerd.spawnCtr(['content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, 'e2e-active'], { namespace: NS });
    let stderr = '';
    ingest.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    ingest.stdin!.write(data.subarray(0, MiB));
    await waitFor(async () => ((stagedBytes(server.root, 'e2e-active') ?? 0) >= MiB ? true : undefined), 30_000, () => `ingest not staged on the server: ${stderr}`);
    assert.deepEqual(await activeRefs(containerd), ['e2e-active']);
    ingest.stdin!.end(data.subarray(MiB));
    assert.equal(await exitOf(ingest), 0, `ctr content ingest failed: ${stderr}`);
    assert.deepEqual(await activeRefs(containerd), []);

    assert.ok((await contentList(containerd)).has(digest), 'ctr content ls does not list the ingested blob');
    assert.deepEqual(stored(server.root, digest), { file: true, row: true, namespaces: [''] });
    assert.ok(blobOnDisk(server.root, digest)!.equals(data));
    const got = await containerd.ctr(['content', 'get', digest], { namespace: NS });
    assert.equal(got.code, 0, got.stderr);
    assert.ok(got.stdoutBytes.equals(data), 'ctr content get returned other bytes');

    await containerd.ctrOk(['content', 'label', digest, 'containerd.io/gc.root=e2e', 'e2e.label=yes'], { namespace: NS });
    assert.match((await contentList(containerd)).get(digest) ?? '', /e2e\.label=yes/);

    assert.equal((await containerd.ctrOk(['content', 'rm', digest], { namespace: NS })).trim(), digest);
    assert.equal((await contentList(containerd)).has(digest), false);
    // containerd's collector deletes from the store once nothing in its database references the blob.
    await waitFor(async () => (JSON.stringify(stored(server.root, digest)) === JSON.stringify(ABSENT) ? true : undefined), 60_000, () =>
      `blob still in the store after ctr content rm: ${JSON.stringify(stored(server.root, digest))}`,
    );
  });

  test("containerd's garbage collection removes an image's blobs from disk and SQLite, and only those", async () => {
    // Built from the same seed: its one layer is the first layer of the image.
    const other = await buildOciImage({ dir: join(work, 'other'), name: 'localhost/contentd-e2e-other:latest', layers: 1, layerSize: 12 * MiB });
    assert.equal(other.layers[0]!.digest, image.layers[0]!.digest);
    await containerd.ctrOk(['images', 'import', '--snapshotter', containerd.snapshotter, other.archive], { namespace: NS });

    await containerd.ctrOk(['images', 'rm', '--sync', image.name, ...(pushed ? [pushed] : [])], { namespace: NS });
    const gone = [...image.blobs.keys()].filter((digest) => !other.blobs.has(digest));
    assert.equal(gone.length, 4);
    const left = (): string[] => gone.filter((digest) => JSON.stringify(stored(server.root, digest)) !== JSON.stringify(ABSENT));
    await waitFor(async () => (left().length === 0 ? true : undefined), 60_000, () => `not collected: ${left().join(', ')}`);

    await assertHoldsBlobs(server.root, other.blobs);
    await assertImageComplete(containerd, other.name, NS);
  });

  test('restarting contentd: containerd reconnects by itself and an interrupted ingest resumes', async () => {
    const data = randomBytes(8 * MiB);
    const digest = sha256(data);
    const args = ['content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, 'e2e-resume'];
    const first = containerd.spawnCtr(args, { namespace: NS });
    first.stdout!.resume();
    first.stderr!.resume();
    first.stdin!.write(data.subarray(0, 4 * MiB));
    await waitFor(async () => ((stagedBytes(server.root, 'e2e-resume') ?? 0) >= 4 * MiB ? true : undefined), 30_000, () => 'ingest not staged');

    await server.restart();
    // containerd's connection to contentd broke; its next calls reconnect on their own.
    const refs = await waitFor(
      async () => {
        const res = await containerd.ctr(['content', 'active'], { namespace: NS });
        return res.code === 0 ? parseActive(res.stdout) : undefined;
      },
      30_000,
      () => `containerd did not reconnect:\n${containerd.log().slice(-3000)}`,
    );
    assert.deepEqual(refs, ['e2e-resume']);
    const offset = stagedBytes(server.root, 'e2e-resume');
    assert.equal(offset, 4 * MiB, 'the staged bytes did not survive the restart');
    first.stdin!.end();
    assert.notEqual(await exitOf(first), 0, 'the interrupted ctr should have failed');

    // The second run gets zeros where the server already has the bytes: only a resumed ingest yields the digest.
    const resume = join(work, 'resume.bin');
    await writeFile(resume, Buffer.concat([Buffer.alloc(offset), data.subarray(offset)]));
    const file = await open(resume, 'r');
    try {
      const res = await containerd.ctr(args, { namespace: NS, stdinFd: file.fd });
      assert.equal(res.code, 0, `resumed ingest failed: ${res.stderr}`);
    } finally {
      await file.close();
    }
    assert.ok(blobOnDisk(server.root, digest)?.equals(data), 'the resumed blob differs');
    assert.deepEqual(await activeRefs(containerd), []);
    await containerd.ctrOk(['content', 'rm', digest], { namespace: NS });
  });

  test("containerd's content test suite through containerd (mode containerd): content + cross-namespace shared", { timeout: 8 * 60_000 }, async () => {
    await assertContentSuiteThroughContainerd(await harness, containerd, work, () =>
      `--- containerd log (tail) ---\n${containerd.log().slice(-4000)}\n--- contentd log (tail) ---\n${server.output().slice(-4000)}`,
    );
  });
});
