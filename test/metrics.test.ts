// Prometheus metrics: scraped over HTTP from a real server while real
// requests run, checking that each number moves as the work says it should.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rename, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { status } from '@grpc/grpc-js';
import { Metrics } from '../src/server/metrics';
import { ContentService, ReadContentRequest, WriteAction } from '../generated/containerd/services/content/v1/content';
import { contentClient, info, md, read, sha256, WriteSession, writeBlob } from './support/client';
import { encodeFrame, ErrorCode, Flags, FrameType, H2Client, requestHeaders } from './support/h2-wire';
import { startTestServer, type TestServer } from './support/server';

type Samples = Array<{ name: string; labels: Record<string, string>; value: number }>;

/** Parses the Prometheus text format (the subset prom-client writes). */
function parseSamples(text: string): Samples {
  const samples: Samples = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of the samples of name whose labels include the given ones (0 when none). */
function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function scrape(url: string): Promise<Samples> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return parseSamples(await res.text());
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never became true: ${what}`);
}

describe('metrics endpoint', () => {
  let server: TestServer;
  let url: string;
  let client: ReturnType<typeof contentClient>;
  before(async () => {
    server = await startTestServer({ args: ['--metrics-address', '127.0.0.1:0'] });
    const m = /metrics endpoint url=(http:\/\/\S+)/.exec(server.output());
    assert.ok(m, `no metrics endpoint in the log:\n${server.output()}`);
    url = m[1]!;
    client = contentClient(server.address);
  });
  after(async () => {
    client.close();
    await server.destroy();
  });

  test('serves /metrics only, with process metrics', async () => {
    assert.equal((await fetch(url.replace('/metrics', '/'))).status, 404);
    const samples = await scrape(url);
    assert.ok(value(samples, 'process_resident_memory_bytes') > 0);
  });

  test('counts requests by method and code, with latency, and bytes written and read', async () => {
    const before = await scrape(url);
    const data = randomBytes(300_000);
    await writeBlob(client, 'metrics-1', data, { metadata: md('metrics'), chunk: 100_000 });
    const got = await read(client, sha256(data), 0, 0, md('metrics'));
    assert.equal(got.data.length, data.length);
    await assert.rejects(info(client, sha256(Buffer.from('absent')), md('metrics')));
    const samples = await scrape(url);
    const delta = (name: string, labels?: Record<string, string>): number => value(samples, name, labels) - value(before, name, labels);

    assert.equal(delta('grpc_server_started_total', { grpc_method: 'Write' }), 1);
    assert.equal(delta('grpc_server_handled_total', { grpc_method: 'Write', grpc_code: 'OK' }), 1);
    assert.equal(delta('grpc_server_handled_total', { grpc_method: 'Read', grpc_code: 'OK' }), 1);
    assert.equal(delta('grpc_server_handled_total', { grpc_method: 'Info', grpc_code: 'NOT_FOUND' }), 1);
    assert.equal(delta('grpc_server_handling_seconds_count', { grpc_method: 'Info', grpc_code: 'NOT_FOUND' }), 1);
    assert.ok(delta('grpc_server_handling_seconds_sum', { grpc_method: 'Write', grpc_code: 'OK' }) > 0);
    assert.equal(delta('contentd_content_bytes_written_total'), data.length);
    assert.equal(delta('contentd_content_bytes_read_total'), data.length);
  });

  test('a Read stalled by a client that takes no data is reset when its grpc-timeout passes, and stops reading the blob', async () => {
    const data = randomBytes(32 << 20);
    await writeBlob(client, 'metrics-deadline', data, { metadata: md('metrics') });
    const before = value(await scrape(url), 'contentd_content_bytes_read_total');
    // A raw client that never grants window beyond HTTP/2's initial 64 KiB: the Read stalls until its deadline.
    const c = await H2Client.connect(server.address);
    try {
      const stream = c.newStream();
      c.write(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS, stream, requestHeaders(ContentService.read.path, 'metrics', [['grpc-timeout', '300m']])));
      await c.sendMessage(stream, ReadContentRequest.encode({ digest: sha256(data), offset: 0, size: 0 }).finish(), true);
      const result = await c.response(stream, 5000);
      // The status could not pass the stalled data: the server resets the stream instead.
      assert.equal(result.reset, ErrorCode.CANCEL, `the stream ended with ${c.summary()}`);
      // Time for a handler that missed the cancellation to go on reading.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const read = value(await scrape(url), 'contentd_content_bytes_read_total') - before;
      assert.ok(read <= 4 << 20, `${read} bytes read after the deadline ended the call`);
    } finally {
      c.close();
    }
  });

  test('tracks blobs stored and ingests in progress', async () => {
    const start = await scrape(url);
    const data = randomBytes(1234);
    // Two namespaces, one stored blob.
    await writeBlob(client, 'metrics-2', data, { metadata: md('a') });
    await writeBlob(client, 'metrics-2', data, { metadata: md('b') });
    let samples = await scrape(url);
    assert.equal(value(samples, 'contentd_blobs') - value(start, 'contentd_blobs'), 1);
    assert.equal(value(samples, 'contentd_blobs_bytes') - value(start, 'contentd_blobs_bytes'), 1234);
    assert.equal(value(samples, 'contentd_ingests_active'), 0);

    const session = new WriteSession(client, md('a'));
    await session.send({ action: WriteAction.WRITE, ref: 'metrics-open', offset: 0, data: Buffer.from('partial') });
    samples = await scrape(url);
    assert.equal(value(samples, 'contentd_ingests_active'), 1);
    session.cancel();
    await eventually(async () => value(await scrape(url), 'contentd_ingests_active') === 0, 'the cancelled ingest is released');

    // In the global namespace (no namespace header) Delete removes the bytes at once;
    // in others garbage collection does, later.
    const global = randomBytes(100);
    await writeBlob(client, 'metrics-3', global);
    assert.equal(value(await scrape(url), 'contentd_blobs') - value(start, 'contentd_blobs'), 2);
    await new Promise<void>((resolve, reject) => client.delete({ digest: sha256(global) }, md(), (e) => (e ? reject(e) : resolve())));
    samples = await scrape(url);
    assert.equal(value(samples, 'contentd_blobs') - value(start, 'contentd_blobs'), 1);
    assert.equal(value(samples, 'contentd_blobs_bytes') - value(start, 'contentd_blobs_bytes'), 1234);
  });

  test('counts disk failures', async () => {
    const before = await scrape(url);
    // The ingest directory replaced by a file: staging the next write fails.
    const ingest = join(server.root, 'ingest');
    await rename(ingest, `${ingest}.moved`);
    await writeFile(ingest, '');
    try {
      await assert.rejects(writeBlob(client, 'metrics-disk', Buffer.from('x'), { metadata: md('disk') }), (e: { code: number }) => e.code === status.INTERNAL);
    } finally {
      await rm(ingest);
      await rename(`${ingest}.moved`, ingest);
    }
    const samples = await scrape(url);
    assert.ok(value(samples, 'contentd_storage_errors_total', { component: 'blobs', operation: 'openIngest' }) > value(before, 'contentd_storage_errors_total', { component: 'blobs', operation: 'openIngest' }));
    // Expected outcomes are not failures.
    assert.equal(value(samples, 'contentd_storage_errors_total', { component: 'sqlite' }), 0);
  });

  test('counts SQLite failures', async () => {
    const before = value(await scrape(url), 'contentd_storage_errors_total', { component: 'sqlite' });
    // Another process holding the write lock past the busy timeout (5 s) makes the server's write fail.
    const other = new Database(join(server.root, 'metadata.db'));
    other.exec('BEGIN IMMEDIATE');
    try {
      await assert.rejects(writeBlob(client, 'metrics-busy', Buffer.from('y'), { metadata: md('busy') }), (e: { code: number; details: string }) => e.code === status.INTERNAL && /locked/.test(e.details));
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    assert.ok(value(await scrape(url), 'contentd_storage_errors_total', { component: 'sqlite' }) > before);
  });
});

describe('metrics hooks', () => {
  test('gcRun counts passes and reclaimed bytes; blob gauges start from the stored totals', async () => {
    const metrics = new Metrics();
    metrics.setBlobTotals({ count: 10, bytes: 5000 });
    metrics.gcRun(4096);
    metrics.gcRun(0);
    metrics.blobDeleted(1000);
    const samples = parseSamples(await metrics.registry.metrics());
    assert.equal(value(samples, 'contentd_gc_runs_total'), 2);
    assert.equal(value(samples, 'contentd_gc_reclaimed_bytes_total'), 4096);
    assert.equal(value(samples, 'contentd_blobs'), 9);
    assert.equal(value(samples, 'contentd_blobs_bytes'), 4000);
  });
});

describe('metrics off by default', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.destroy();
  });

  test('no endpoint without metrics.address', () => {
    assert.doesNotMatch(server.output(), /metrics endpoint/);
  });

  test('an invalid address stops start-up with a clear message', async () => {
    await mkdir(join(server.root, 'bad'), { recursive: true });
    await assert.rejects(
      startTestServer({ root: join(server.root, 'bad'), config: '[metrics]\naddress = "localhost"\n' }),
      /metrics address "localhost" must be HOST:PORT/,
    );
  });
});
