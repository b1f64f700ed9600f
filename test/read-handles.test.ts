// The server keeps read handles of blobs open between Read RPCs (containerd's
// proxy sends one per 32 KiB). These tests check, in /proc, that it holds no
// more than it should: none for a deleted blob, and a bounded number overall.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import type { ContentClient } from '../generated/containerd/services/content/v1/content';
import { contentClient, md, read, remove, sha256, writeBlob } from './support/client';
import { waitFor } from './support/process';
import { startTestServer, type TestServer } from './support/server';

/** Blob files the process has open, as /proc shows their paths. */
function openBlobFiles(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return readdirSync(dir)
    .map((fd) => {
      try {
        return readlinkSync(`${dir}/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((path) => path.includes('/blobs/sha256/'));
}

describe('cached read handles', { skip: process.platform !== 'linux' ? 'needs /proc' : false }, () => {
  let server: TestServer;
  let client: ContentClient;
  // The global namespace: its Delete removes the bytes at once (a namespace's leaves them to the collector).
  const ns = md();

  before(async () => {
    server = await startTestServer();
    client = contentClient(server.address);
  });

  after(async () => {
    client.close();
    await server.destroy();
  });

  test('a blob read in many small reads is opened once and its handle is closed when it is deleted', async () => {
    const data = randomBytes(256 * 1024);
    const digest = sha256(data);
    await writeBlob(client, 'one', data, { metadata: ns });
    const parts: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += 32 * 1024) {
      parts.push((await read(client, digest, offset, 32 * 1024, ns)).data);
    }
    assert.deepEqual(Buffer.concat(parts), data);
    const open = openBlobFiles(server.process.pid!);
    assert.equal(open.filter((path) => path.endsWith(digest.slice('sha256:'.length))).length, 1, `one handle for the blob: ${open.join(', ')}`);

    await remove(client, digest, ns);
    // The handle is closed asynchronously, right after the file is removed.
    await waitFor(
      async () => (openBlobFiles(server.process.pid!).some((path) => path.includes(digest.slice('sha256:'.length))) ? undefined : true),
      2000,
      () => `still open after Delete: ${openBlobFiles(server.process.pid!).join(', ')}`,
    );
    // The same bytes committed again are read from the new file.
    await writeBlob(client, 'again', data, { metadata: ns });
    assert.deepEqual((await read(client, digest, 0, 0, ns)).data, data);
  });

  test('handles of idle blobs are bounded', async () => {
    const blobs = Array.from({ length: 200 }, () => randomBytes(512));
    for (const [i, data] of blobs.entries()) await writeBlob(client, `many-${i}`, data, { metadata: ns });
    for (const data of blobs) assert.deepEqual((await read(client, sha256(data), 0, 0, ns)).data, data);
    // An evicted handle closes asynchronously: the bound holds once the closes of the last reads have run.
    const open = await waitFor(
      async () => {
        const files = openBlobFiles(server.process.pid!);
        return files.length <= 128 ? files : undefined;
      },
      2000,
      () => `${openBlobFiles(server.process.pid!).length} blob files open`,
    );
    assert.ok(open.length > 0, 'recently read blobs stay open');
  });
});
