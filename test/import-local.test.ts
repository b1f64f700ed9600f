// `contentd import-local`: swapping a containerd that already has images
// from its built-in content store to contentd. The images imported while
// containerd used its local store must all be complete afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from './support/client';
import { assertImageComplete, containerdMissing, contentdSnippet, startContainerd } from './support/containerd';
import { blobOnDisk, blobPath } from './support/disk';
import { buildOciImage, type OciImage } from './support/oci-image';
import { run, type RunResult } from './support/process';
import { CLI, startTestServer } from './support/server';
import { ABSENT, assertHoldsBlobs, stored } from './support/store-state';

const missing = containerdMissing();
if (missing && process.env.CI === 'true') throw new Error(`import-local: ${missing} (required when CI=true)`);

const NS = 'migrate';
const MiB = 1 << 20;
const LOCAL_BLOBS = join('io.containerd.content.v1.content', 'blobs', 'sha256');

function importLocal(root: string, source: string, ...flags: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI, '--root', root, 'import-local', source, ...flags], { timeoutMs: 120_000 });
}

interface Summary {
  present: number;
  reused: number;
  linked: number;
  copied: number;
  bytes: number;
  failures: Array<{ path: string; reason: string }>;
}

describe('contentd import-local', { skip: missing ? `import-local skipped: ${missing}` : false, timeout: 5 * 60_000 }, () => {
  let work = '';
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'contentd-import-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("a containerd with images on its local store keeps them all complete after the swap to contentd", async () => {
    const images: OciImage[] = [
      await buildOciImage({ dir: join(work, 'a'), name: 'localhost/migrate/a:1', seed: 'a', layers: 3, layerSize: 4 * MiB }),
      await buildOciImage({ dir: join(work, 'b'), name: 'localhost/migrate/b:1', seed: 'b', layers: 2, layerSize: 2 * MiB }),
    ];
    const dir = join(work, 'containerd');
    let containerd = await startContainerd({ dir });
    try {
      for (const image of images) await containerd.ctrOk(['images', 'import', '--snapshotter', containerd.snapshotter, image.archive], { namespace: NS });
      for (const image of images) await assertImageComplete(containerd, image.name, NS);
    } finally {
      await containerd.stop();
    }
    const source = join(containerd.root, LOCAL_BLOBS);
    const local = readdirSync(source);
    // Every image blob, perhaps one more: ctr's import also writes an index of the archive as a blob, which containerd's collector removes only eventually.
    for (const image of images) for (const digest of image.blobs.keys()) assert.ok(local.includes(digest.slice('sha256:'.length)), `${digest} in containerd's local store`);

    const root = join(work, 'store');
    const first = await importLocal(root, containerd.root);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^imported ${local.length} blobs .*: ${local.length} linked, 0 copied, 0 reused, 0 already present, 0 failed`));
    for (const image of images) await assertHoldsBlobs(root, image.blobs);
    for (const hex of local) {
      assert.equal(statSync(blobPath(root, `sha256:${hex}`)).ino, statSync(join(source, hex)).ino, `sha256:${hex} was not hard-linked`);
    }

    // A re-run must skip what is there without reading it: a source file whose bytes changed goes unnoticed.
    const changed = images[0]!.layers[0]!.digest;
    const changedPath = join(source, changed.slice('sha256:'.length));
    await rm(changedPath);
    await writeFile(changedPath, randomBytes(images[0]!.layers[0]!.size));
    const second = await importLocal(root, containerd.root);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`^imported 0 blobs .*: 0 linked, 0 copied, 0 reused, ${local.length} already present, 0 failed`));
    assert.equal(sha256(blobOnDisk(root, changed)!), changed);

    const server = await startTestServer({ root });
    try {
      const refused = await importLocal(root, containerd.root);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /in use by another contentd process/);

      containerd = await startContainerd({ dir, contentProxy: await contentdSnippet(server) });
      try {
        for (const image of images) await assertImageComplete(containerd, image.name, NS);
        // containerd's collector walks the whole store: what it still references must survive it.
        await containerd.ctrOk(['images', 'rm', '--sync', images[1]!.name], { namespace: NS });
        await assertImageComplete(containerd, images[0]!.name, NS);
        await assertHoldsBlobs(root, images[0]!.blobs);
        for (const digest of images[1]!.blobs.keys()) assert.deepEqual(stored(root, digest), ABSENT, `${digest} outlived its image`);
      } finally {
        await containerd.stop();
      }
    } finally {
      await server.stop();
    }
  });

  test('verifies every digest, copies across filesystems and with --copy, reports what it could not import', async () => {
    // /dev/shm is a tmpfs: another filesystem than the store's, so hard links fail with EXDEV.
    const source = await mkdtemp('/dev/shm/contentd-import-');
    try {
      const dir = join(source, LOCAL_BLOBS);
      await mkdir(dir, { recursive: true });
      const good = [randomBytes(MiB), randomBytes(300 * 1024)];
      for (const data of good) await writeFile(join(dir, sha256(data).slice('sha256:'.length)), data);
      const liar = sha256(Buffer.from('what the name promises'));
      await writeFile(join(dir, liar.slice('sha256:'.length)), 'something else');
      await writeFile(join(dir, 'not-a-digest'), 'junk');

      const root = join(work, 'copies');
      const res = await importLocal(root, source, '--json');
      assert.equal(res.code, 1, 'failures must make the exit status non-zero');
      const summary = JSON.parse(res.stdout) as Summary;
      assert.deepEqual(
        { linked: summary.linked, copied: summary.copied, present: summary.present, reused: summary.reused, bytes: summary.bytes },
        { linked: 0, copied: 2, present: 0, reused: 0, bytes: good[0]!.length + good[1]!.length },
      );
      assert.deepEqual(summary.failures.map((f) => f.path.split('/').pop()).sort(), [liar.slice('sha256:'.length), 'not-a-digest']);
      assert.match(summary.failures.find((f) => f.path.endsWith(liar.slice('sha256:'.length)))!.reason, /hashes to sha256:/);
      assert.deepEqual(stored(root, liar), ABSENT);
      for (const data of good) {
        assert.deepEqual(stored(root, sha256(data)), { file: true, row: true, namespaces: [''] });
        assert.ok(blobOnDisk(root, sha256(data))!.equals(data));
      }

      // Same filesystem, but --copy: independent files.
      const same = join(work, 'same-fs');
      await mkdir(join(same, LOCAL_BLOBS), { recursive: true });
      const data = randomBytes(64 * 1024);
      const file = join(same, LOCAL_BLOBS, sha256(data).slice('sha256:'.length));
      await writeFile(file, data);
      const copied = await importLocal(join(work, 'copy-flag'), same, '--copy', '--json');
      assert.equal(copied.code, 0, copied.stderr);
      assert.equal((JSON.parse(copied.stdout) as Summary).copied, 1);
      assert.notEqual(statSync(blobPath(join(work, 'copy-flag'), sha256(data))).ino, statSync(file).ino);
    } finally {
      await rm(source, { recursive: true, force: true });
    }
  });
});
