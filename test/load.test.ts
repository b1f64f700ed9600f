// Load: 64 clients, each on its own connection, mix ingest, read, info, list,
// status and delete for a bounded time (LOAD_SECONDS, 20 by default). No
// request may fail, every read must return the right bytes, and once the
// clients are gone the server's open descriptors and resident memory come
// back to what they were after a warm-up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import type { ContentClient } from '../generated/containerd/services/content/v1/content';
import { startTestServer, type TestServer } from './support/server';
import { contentClient, info, list, listStatuses, md, read, remove, sha256, writeBlob } from './support/client';
import { blobHandles, CACHED_BLOB_HANDLES, openFds, rssMiB, settle } from './support/proc';

const CLIENTS = 64;
const LOAD_MS = Number(process.env.LOAD_SECONDS ?? 20) * 1000;
/** Content is kept from the garbage collector (which the deletes set off) as a containerd client keeps it. */
const GC_ROOT = { 'containerd.io/gc.root': 'load-test' };
/** Stored by every client in its own namespace: commits of bytes already stored. */
const SHARED = Array.from({ length: 4 }, () => randomBytes(100_000));

interface Tally {
  requests: number;
  bytesWritten: number;
  bytesRead: number;
  failures: string[];
}

/** One client's loop: everything in its own namespace, so any error is a bug, not a race between clients. */
async function run(client: ContentClient, namespace: string, until: number, tally: Tally): Promise<void> {
  const ns = md(namespace);
  const mine = new Map<string, Buffer>();
  for (let i = 0; Date.now() < until; i++) {
    const dice = randomInt(100);
    const digests = [...mine.keys()];
    const some = digests.length > 0 ? digests[randomInt(digests.length)]! : undefined;
    try {
      if (dice < 35 || !some) {
        const shared = SHARED[randomInt(SHARED.length)]!;
        const data = randomInt(10) === 0 && !mine.has(sha256(shared)) ? shared : randomBytes(randomInt(20) === 0 ? 2 << 20 : randomInt(1, 256 << 10));
        await writeBlob(client, `ref-${i}`, data, { metadata: ns, chunk: 256 << 10, labels: GC_ROOT });
        mine.set(sha256(data), data);
        tally.bytesWritten += data.length;
      } else if (dice < 60) {
        const data = mine.get(some)!;
        const offset = randomInt(data.length + 1);
        const got = (await read(client, some, offset, 0, ns)).data;
        assert.ok(got.equals(data.subarray(offset)), `read of ${some} @${offset}`);
        tally.bytesRead += got.length;
      } else if (dice < 75) {
        assert.equal((await info(client, some, ns)).size, mine.get(some)!.length);
      } else if (dice < 85) {
        assert.equal((await list(client, [], ns)).length, mine.size);
      } else if (dice < 90) {
        await listStatuses(client, [], ns);
      } else {
        await remove(client, some, ns);
        mine.delete(some);
      }
      tally.requests++;
    } catch (e) {
      tally.failures.push(`${namespace}: ${(e as Error).message}`);
    }
  }
}

async function load(server: TestServer, phase: string, ms: number): Promise<Tally> {
  const tally: Tally = { requests: 0, bytesWritten: 0, bytesRead: 0, failures: [] };
  // A pool of its own per client: 64 connections, not 64 clients sharing one.
  const clients = Array.from({ length: CLIENTS }, () => contentClient(server.address, { 'grpc.use_local_subchannel_pool': 1 }));
  const until = Date.now() + ms;
  try {
    await Promise.all(clients.map((client, id) => run(client, `${phase}-${id}`, until, tally)));
  } finally {
    for (const client of clients) client.close();
  }
  return tally;
}

describe('load', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.destroy());

  test(`${CLIENTS} clients for ${LOAD_MS / 1000} s: no errors, descriptors and memory back to their baseline`, { timeout: LOAD_MS + 60_000 }, async () => {
    const pid = server.process.pid!;
    const idle = openFds(pid);
    // Warm-up: code compiled, pools and caches at their working size; its connections closed again.
    const warm = await load(server, 'warm-up', 3000);
    assert.deepEqual(warm.failures, []);
    const fds = await settle(() => openFds(pid), (n) => n <= idle);
    assert.ok(fds <= idle, `after the warm-up, descriptors back to ${idle} (now ${fds})`);
    const rss = rssMiB(pid);

    let peakFds = 0;
    let peakRss = 0;
    const sampler = setInterval(() => {
      peakFds = Math.max(peakFds, openFds(pid));
      peakRss = Math.max(peakRss, rssMiB(pid));
    }, 200);
    const tally = await load(server, 'load', LOAD_MS).finally(() => clearInterval(sampler));
    assert.deepEqual(tally.failures.slice(0, 10), [], `${tally.failures.length} failed requests`);
    assert.ok(tally.requests > CLIENTS * 10, `${tally.requests} requests served`);
    assert.ok(peakFds > fds + CLIENTS / 2, `the load really was concurrent (${peakFds} descriptors at the peak)`);

    const fdsAfter = await settle(() => openFds(pid), (n) => n <= fds);
    assert.ok(fdsAfter <= fds, `open descriptors back to ${fds} (now ${fdsAfter})`);
    assert.ok(blobHandles(pid) <= CACHED_BLOB_HANDLES, `${blobHandles(pid)} cached blob handles`);
    // The heap is collected lazily: allow what one more warm-up pass would hold, not what 20 s of traffic moved.
    const rssAfter = await settle(() => rssMiB(pid), (mib) => mib <= rss + 64, 15_000);
    assert.ok(rssAfter <= rss + 64, `resident memory back near ${rss.toFixed(0)} MiB (now ${rssAfter.toFixed(0)} MiB, peak ${peakRss.toFixed(0)} MiB)`);
    assert.equal(server.process.exitCode, null);
    process.stdout.write(
      `# load: ${tally.requests} requests, ${(tally.bytesWritten / 2 ** 20).toFixed(0)} MiB written, ${(tally.bytesRead / 2 ** 20).toFixed(0)} MiB read; ` +
        `fds ${fds} -> peak ${peakFds} -> ${fdsAfter}; RSS ${rss.toFixed(0)} -> peak ${peakRss.toFixed(0)} -> ${rssAfter.toFixed(0)} MiB\n`,
    );
  });
});
