// containerd's Leases service on the content socket, stored in SQLite, and
// the containerd-lease header of content requests: known leases, and lease
// ids the store has never seen (containerd as a proxy sends its own).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import type { LeasesClient } from '../generated/containerd/services/leases/v1/leases';
import { info, md, rejectsWith, remove, sha256, writeBlob, WriteSession } from './support/client';
import { blobOnDisk, blobPath, withMetadata } from './support/disk';
import { serverFixture } from './support/fixture';
import { addResource, createLease, deleteLease, deleteResource, expiresIn, leasesClient, listLeases, listResources, runGc } from './support/leases';

const NS = md('leases-test');

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}`;

function leaseRows(root: string): Array<{ namespace: string; id: string; labels: string }> {
  return withMetadata(root, (db) => db.prepare('SELECT namespace, id, labels FROM leases ORDER BY namespace, id').all() as Array<{ namespace: string; id: string; labels: string }>);
}

function resourceRows(root: string, lease: string): Array<{ type: string; id: string }> {
  return withMetadata(root, (db) => db.prepare('SELECT type, id FROM lease_resources WHERE lease = ? ORDER BY type, id').all(lease) as Array<{ type: string; id: string }>);
}

describe('Leases service', () => {
  const fx = serverFixture({ config: '[gc]\ninterval = "0"\ndeletion_threshold = 0\n' });
  let leases: LeasesClient;
  before(() => {
    leases = leasesClient(fx.server.address);
  });
  after(() => leases?.close());

  test('Create returns the lease with its labels and a creation time; a second Create is ALREADY_EXISTS', async () => {
    const before = Date.now();
    const lease = await createLease(leases, NS, 'first', { purpose: 'test' });
    assert.equal(lease.id, 'first');
    assert.deepEqual(lease.labels, { purpose: 'test' });
    const created = lease.createdAt!.seconds * 1000 + lease.createdAt!.nanos / 1e6;
    assert.ok(created >= before - 1000 && created <= Date.now() + 1000, `createdAt ${created}`);
    await rejectsWith(createLease(leases, NS, 'first'), 'ALREADY_EXISTS');
    assert.deepEqual(
      leaseRows(fx.server.root).filter((r) => r.id === 'first'),
      [{ namespace: 'leases-test', id: 'first', labels: '{"purpose":"test"}' }],
    );
  });

  test('Create without an id generates one, as containerd does', async () => {
    const lease = await createLease(leases, NS, '');
    assert.match(lease.id, /^\d+-[A-Za-z0-9_-]{4}$/);
    assert.ok((await listLeases(leases, NS, [`id==${lease.id}`])).length === 1);
  });

  test('List with filters: id, quoted label keys, regexps, OR; a malformed filter is INVALID_ARGUMENT with its position', async () => {
    await createLease(leases, NS, 'f-1', { 'example.com/tier': 'gold' });
    await createLease(leases, NS, 'f-2', { 'example.com/tier': 'silver' });
    await createLease(leases, NS, 'f-3');
    const ids = async (filters: string[]) => (await listLeases(leases, NS, filters)).map((l) => l.id).sort();
    assert.deepEqual(await ids(['id==f-1']), ['f-1']);
    assert.deepEqual(await ids(['labels."example.com/tier"==gold']), ['f-1']);
    assert.deepEqual(await ids(['id~=^f-,labels."example.com/tier"']), ['f-1', 'f-2']);
    assert.deepEqual(await ids(['labels."example.com/tier"==silver', 'id==f-3']), ['f-2', 'f-3']);
    await rejectsWith(listLeases(leases, NS, ['labels.example.com/tier==gold']), 'INVALID_ARGUMENT', /quoted literal not terminated \(position 18\)/);
  });

  test('leases are namespaced; requests without a namespace are FAILED_PRECONDITION', async () => {
    await createLease(leases, md('other-ns'), 'shared-name');
    await createLease(leases, NS, 'shared-name');
    await deleteLease(leases, md('other-ns'), 'shared-name');
    assert.equal((await listLeases(leases, NS, ['id==shared-name'])).length, 1);
    assert.equal((await listLeases(leases, md('other-ns'), ['id==shared-name'])).length, 0);
    await rejectsWith(createLease(leases, md(), 'x'), 'FAILED_PRECONDITION', /namespace is required/);
    await rejectsWith(listLeases(leases, md()), 'FAILED_PRECONDITION');
    await rejectsWith(createLease(leases, md('bad namespace'), 'x'), 'INVALID_ARGUMENT');
  });

  test('Delete of an unknown lease is NOT_FOUND; a deleted lease is gone with its resources', async () => {
    await rejectsWith(deleteLease(leases, NS, 'never-created'), 'NOT_FOUND');
    await createLease(leases, NS, 'doomed');
    await addResource(leases, NS, 'doomed', { type: 'ingests', id: 'some-ref' });
    await deleteLease(leases, NS, 'doomed');
    await rejectsWith(listResources(leases, NS, 'doomed'), 'NOT_FOUND');
    assert.deepEqual(resourceRows(fx.server.root, 'doomed'), []);
  });

  test('AddResource, ListResources, DeleteResource with containerd\'s resource types and errors', async () => {
    const digest = sha256(Buffer.from('resource'));
    await createLease(leases, NS, 'res');
    await addResource(leases, NS, 'res', { type: 'content', id: digest });
    await addResource(leases, NS, 'res', { type: 'ingests', id: 'ref-1' });
    await addResource(leases, NS, 'res', { type: 'snapshots/overlayfs', id: 'snap-1' });
    // Adding twice holds once.
    await addResource(leases, NS, 'res', { type: 'content', id: digest });
    assert.deepEqual(await listResources(leases, NS, 'res'), [
      { type: 'content', id: digest },
      { type: 'ingests', id: 'ref-1' },
      { type: 'snapshots/overlayfs', id: 'snap-1' },
    ]);
    await deleteResource(leases, NS, 'res', { type: 'ingests', id: 'ref-1' });
    assert.deepEqual(
      (await listResources(leases, NS, 'res')).map((r) => r.type),
      ['content', 'snapshots/overlayfs'],
    );
    await rejectsWith(addResource(leases, NS, 'res', { type: 'content', id: 'sha256:nothex' }), 'INVALID_ARGUMENT', /invalid content resource id/);
    await rejectsWith(addResource(leases, NS, 'res', { type: 'content/extra', id: digest }), 'INVALID_ARGUMENT', /invalid resource type/);
    await rejectsWith(addResource(leases, NS, 'res', { type: 'snapshots', id: 'x' }), 'INVALID_ARGUMENT', /invalid snapshot resource type/);
    await rejectsWith(addResource(leases, NS, 'res', { type: 'containers', id: 'x' }), 'UNIMPLEMENTED', /not supported/);
    await rejectsWith(addResource(leases, NS, 'unknown', { type: 'ingests', id: 'x' }), 'NOT_FOUND');
    await rejectsWith(deleteResource(leases, NS, 'unknown', { type: 'ingests', id: 'x' }), 'NOT_FOUND');
    await rejectsWith(listResources(leases, NS, 'unknown'), 'NOT_FOUND');
  });

  test('leases survive a restart', async () => {
    await createLease(leases, NS, 'durable', { keep: 'me' });
    await addResource(leases, NS, 'durable', { type: 'ingests', id: 'r' });
    await fx.server.restart();
    leases.close();
    leases = leasesClient(fx.server.address);
    fx.reconnect();
    assert.deepEqual(
      (await listLeases(leases, NS, ['id==durable'])).map((l) => l.labels),
      [{ keep: 'me' }],
    );
    assert.deepEqual(await listResources(leases, NS, 'durable'), [{ type: 'ingests', id: 'r' }]);
  });
});

describe('the containerd-lease header on content requests', () => {
  const fx = serverFixture({ config: '[gc]\ninterval = "0"\ndeletion_threshold = 0\n' });
  let leases: LeasesClient;
  before(() => {
    leases = leasesClient(fx.server.address);
  });
  after(() => leases?.close());

  test('a known lease holds the ingest while it is written, then the committed blob instead', async () => {
    const lease = unique('writer');
    await createLease(leases, NS, lease);
    const data = randomBytes(5000);
    const digest = sha256(data);
    const r = unique('ref');
    const session = new WriteSession(fx.client, md('leases-test', lease));
    await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: data.subarray(0, 1000) });
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'ingests', id: r }]);
    await session.send({ action: WriteAction.COMMIT, offset: 1000, data: data.subarray(1000), total: data.length, expected: digest });
    await session.close();
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'content', id: digest }]);
    assert.deepEqual(resourceRows(fx.server.root, lease), [{ type: 'content', id: digest }]);
  });

  test('a writer for content already there adds it to the lease and reports ALREADY_EXISTS', async () => {
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: NS });
    const lease = unique('existing');
    await createLease(leases, NS, lease);
    const session = new WriteSession(fx.client, md('leases-test', lease));
    await rejectsWith(session.send({ action: WriteAction.STAT, ref: unique('ref'), total: data.length, expected: digest }), 'ALREADY_EXISTS');
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'content', id: digest }]);
  });

  test('a commit that finds the content already there leaves the lease holding the content, not the ingest', async () => {
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: NS });
    const lease = unique('late');
    await createLease(leases, NS, lease);
    // No expected digest up front: the store learns it exists only at commit.
    const session = new WriteSession(fx.client, md('leases-test', lease));
    await rejectsWith(session.send({ action: WriteAction.COMMIT, ref: unique('ref'), offset: 0, data }), 'ALREADY_EXISTS');
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'content', id: digest }]);
  });

  test('a later expected digest that exists aborts the ingest and takes it out of the lease', async () => {
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: NS });
    const lease = unique('expect');
    await createLease(leases, NS, lease);
    const session = new WriteSession(fx.client, md('leases-test', lease));
    const r = unique('ref');
    await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: data.subarray(0, 10) });
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'ingests', id: r }]);
    await rejectsWith(session.send({ action: WriteAction.WRITE, offset: 10, data: data.subarray(10), expected: digest }), 'ALREADY_EXISTS');
    assert.deepEqual(await listResources(leases, NS, lease), []);
  });

  test('Delete and Abort under a lease take the content and the ingest out of that lease', async () => {
    const lease = unique('release');
    await createLease(leases, NS, lease);
    const meta = md('leases-test', lease);
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: meta });
    const r = unique('ref');
    const session = new WriteSession(fx.client, meta);
    await session.send({ action: WriteAction.WRITE, ref: r, offset: 0, data: Buffer.from('partial') });
    await session.close();
    assert.equal((await listResources(leases, NS, lease)).length, 2);
    await remove(fx.client, digest, meta);
    await new Promise<void>((resolve, reject) => fx.client.abort({ ref: r }, meta, (err) => (err ? reject(err) : resolve())));
    assert.deepEqual(await listResources(leases, NS, lease), []);
  });

  test('a lease id the store does not know is created on first use, labelled contentd.io/implicit, and holds what was written', async () => {
    const lease = unique('containerd-own');
    const data = randomBytes(3000);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: md('leases-test', lease) });
    const [implicit] = await listLeases(leases, NS, [`id==${lease}`]);
    assert.deepEqual(implicit?.labels, { 'contentd.io/implicit': 'true' });
    assert.deepEqual(await listResources(leases, NS, lease), [{ type: 'content', id: digest }]);
    // The collector keeps it: the implicit lease has no expiry.
    const run = await runGc(fx.server.root);
    assert.equal(run.via.by, 'server');
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    assert.equal((await info(fx.client, digest, NS)).size, 3000);
    // Until someone deletes that lease: then the content goes with the next collection.
    await deleteLease(leases, NS, lease, true);
    await rejectsWith(info(fx.client, digest, NS), 'NOT_FOUND');
    assert.equal(existsSync(blobPath(fx.server.root, digest)), false);
  });

  test('a known lease: the same write is held, and a sync Delete collects before it returns', async () => {
    const lease = unique('known');
    await createLease(leases, NS, lease, expiresIn(3_600_000));
    const data = randomBytes(2000);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: md('leases-test', lease) });
    await runGc(fx.server.root);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    assert.deepEqual(
      (await listLeases(leases, NS, [`id==${lease}`])).map((l) => Object.keys(l.labels)),
      [['containerd.io/gc.expire']],
    );
    await deleteLease(leases, NS, lease, true);
    assert.equal(existsSync(blobPath(fx.server.root, digest)), false);
  });

  test('requests without a namespace ignore the header: no lease is created, nothing is ever collected', async () => {
    const lease = unique('global');
    const data = randomBytes(100);
    const digest = sha256(data);
    await writeBlob(fx.client, unique('ref'), data, { metadata: md(undefined, lease) });
    assert.deepEqual(
      leaseRows(fx.server.root).filter((r) => r.id === lease),
      [],
    );
    await runGc(fx.server.root);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), data);
    assert.ok(existsSync(join(fx.server.root, 'metadata.db')));
  });
});
