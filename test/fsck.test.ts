// `contentd fsck`: finds every kind of damage on a real store, reports it
// without touching anything, repairs it with --repair (corrupt bytes go to
// quarantine, never deleted) and refuses to repair under a running server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { CLI, startTestServer, type TestServer } from './support/server';
import { contentClient, info, md, read, sha256, writeBlob } from './support/client';

interface Report {
  blobs: number;
  ingests: number;
  problems: Array<{ kind: string; subject: string; namespace?: string; detail: string; repaired?: string }>;
}

function fsck(root: string, ...args: string[]): { status: number | null; report?: Report; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, 'fsck', '--root', root, '--json', ...args], { encoding: 'utf8' });
  return { status: run.status, report: run.stdout ? (JSON.parse(run.stdout) as Report) : undefined, stderr: run.stderr };
}

const blobFile = (root: string, digest: string): string => join(root, 'blobs', 'sha256', digest.slice('sha256:'.length));

describe('contentd fsck', () => {
  let server: TestServer;
  const corrupt = randomBytes(300_000);
  const lost = randomBytes(1000);
  const shared = randomBytes(5000);
  const unreferenced = randomBytes(700);
  const orphan = randomBytes(900);
  const dangling = sha256(randomBytes(10));
  let damaged: Buffer;

  before(async () => {
    server = await startTestServer();
    const client = contentClient(server.address);
    await writeBlob(client, 'a', corrupt, { metadata: md('ns1') });
    await writeBlob(client, 'b', lost, { metadata: md('ns1') });
    await writeBlob(client, 'c', shared, { metadata: md('ns1') });
    await writeBlob(client, 'c', shared, { metadata: md('ns2') });
    await writeBlob(client, 'd', unreferenced, { metadata: md('ns2') });
    client.close();
  });
  after(() => server.destroy());

  test('a healthy store checks clean, and --repair refuses while the server runs', () => {
    const clean = fsck(server.root);
    assert.equal(clean.status, 0, clean.stderr);
    assert.deepEqual(clean.report!.problems, []);
    assert.equal(clean.report!.blobs, 4);

    const refused = fsck(server.root, '--repair');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /in use by another contentd process/);
  });

  test('reports each kind of damage, changing nothing', async () => {
    await server.stop();
    const root = server.root;
    damaged = readFileSync(blobFile(root, sha256(corrupt)));
    damaged[12345] ^= 0xff;
    writeFileSync(blobFile(root, sha256(corrupt)), damaged);
    rmSync(blobFile(root, sha256(lost)));
    writeFileSync(blobFile(root, sha256(orphan)), orphan);
    writeFileSync(join(root, 'blobs', 'sha256', 'partial.tmp'), 'junk');
    writeFileSync(join(root, 'ingest', 'leftover'), 'staged');
    const db = new Database(join(root, 'metadata.db'));
    // Damage the schema would refuse: as a bad disk or a hand edit leaves it.
    db.pragma('foreign_keys = OFF');
    db.prepare("DELETE FROM content WHERE digest = ?").run(sha256(unreferenced));
    db.prepare("INSERT INTO content (namespace, digest, created_at, updated_at) VALUES ('ns3', ?, 1, 1)").run(dangling);
    db.prepare("INSERT INTO ingests VALUES ('ns1', 'based/on/nothing', 'some-id', 10, '', ?, 1, 1)").run(dangling);
    db.close();

    const { status, report, stderr } = fsck(root);
    assert.equal(status, 4, stderr);
    const found = report!.problems.map((p) => `${p.kind} ${p.subject}`).sort();
    assert.deepEqual(
      found,
      [
        `broken-ingest based/on/nothing`,
        `corrupt ${sha256(corrupt)}`,
        `dangling-content ${dangling}`,
        `foreign-entry sha256:partial.tmp`,
        `missing ${sha256(lost)}`,
        `orphan-blob ${sha256(orphan)}`,
        `orphan-ingest leftover`,
      ].sort(),
    );
    assert.ok(report!.problems.every((p) => p.repaired === undefined));
    assert.match(report!.problems.find((p) => p.kind === 'corrupt')!.detail, /bytes hash to sha256:[0-9a-f]{64}; referenced by namespaces "ns1"/);
    // Nothing moved: a check is read-only.
    assert.deepEqual(readFileSync(blobFile(root, sha256(corrupt))), damaged);
    assert.ok(existsSync(blobFile(root, sha256(orphan))));
    assert.ok(existsSync(join(root, 'ingest', 'leftover')));
    assert.ok(!existsSync(join(root, 'quarantine')));

    const quick = fsck(root, '--quick');
    assert.equal(quick.status, 4);
    assert.ok(!quick.report!.problems.some((p) => p.kind === 'corrupt'), 'same-size damage needs the re-hash');
  });

  test('--repair quarantines corrupt bytes, fixes the rest, and a second run is clean', async () => {
    const root = server.root;
    const { status, report, stderr } = fsck(root, '--repair');
    assert.equal(status, 1, stderr);
    assert.ok(report!.problems.every((p) => p.repaired), JSON.stringify(report!.problems));

    const quarantined = readdirSync(join(root, 'quarantine'));
    assert.equal(quarantined.length, 2, quarantined.join(' '));
    const kept = quarantined.find((name) => name.startsWith(`sha256-${sha256(corrupt).slice(7)}`));
    assert.ok(kept, 'the corrupt blob is kept in quarantine');
    assert.deepEqual(readFileSync(join(root, 'quarantine', kept!)), damaged);
    assert.ok(quarantined.some((name) => name.startsWith('sha256-partial.tmp')));
    assert.ok(!existsSync(blobFile(root, sha256(corrupt))));
    assert.ok(!existsSync(blobFile(root, sha256(orphan))));
    assert.ok(existsSync(blobFile(root, sha256(unreferenced))), 'a blob no namespace references is left to the garbage collector');
    assert.deepEqual(readdirSync(join(root, 'ingest')), []);

    const again = fsck(root);
    assert.equal(again.status, 0, JSON.stringify(again.report));
    assert.equal(again.report!.blobs, 2);

    await server.restart();
    const client = contentClient(server.address);
    try {
      for (const gone of [corrupt, lost]) {
        await assert.rejects(info(client, sha256(gone), md('ns1')), (e: ServiceError) => e.code === grpcStatus.NOT_FOUND);
      }
      assert.deepEqual((await read(client, sha256(shared), 0, 0, md('ns2'))).data, shared);
    } finally {
      client.close();
    }
  });

  test('shows progress on a terminal and a summary in text mode', async () => {
    await server.stop();
    const root = server.root;
    mkdirSync(join(root, 'ingest'), { recursive: true });
    const run = spawnSync('script', ['-qec', `${process.execPath} ${CLI} fsck --root ${root}`, '/dev/null'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout);
    assert.match(run.stdout, /verifying blobs \[#+\] 100% 5\.57 KiB\/5\.57 KiB - 2 blobs/);
    assert.match(run.stdout, /checked 2 blobs \(5\.57 KiB\) and 0 ingests: 0 problems/);
  });
});
