// Runs the benchmark in its quick mode (tiny sizes, one run) to check that
// every row works against every target. No timing is asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { conformanceMissing } from './support/conformance';
import { containerdMissing } from './support/containerd';
import { run } from './support/process';
import { registryMissing } from './support/registry';

const BENCH = resolve(__dirname, '..', 'bench', 'main.js');
// conformanceMissing: the proxy-ref target is built with the same Go toolchain and containerd sources.
const missing = containerdMissing() ?? registryMissing() ?? conformanceMissing();
if (missing && process.env.CI === 'true') throw new Error(`bench-smoke: ${missing} (required when CI=true)`);

interface BenchJson {
  rows: Array<{ id: string; targets: Record<string, { median: number; peakRssBytes: number; hopCpuSeconds?: number } | null>; ratios: { direct: number | null; proxy: number | null; proxyRef: number | null } }>;
}

/** The comparison with containerd; the s3 target's rows need Ceph and are not smoke-tested here. */
const TARGETS = 'direct,containerd,proxy,proxy-ref';
const ALL_ROWS = ['ingest', 'read-1m', 'read-32k', 'commit-4k', 'info', 'read-4k', 'ingest-1g', 'read-1g', 'pull'];

test('bench --quick completes and prints every row for direct, containerd, proxy and proxy-ref', { skip: missing ? `bench smoke skipped: ${missing}` : false, timeout: 10 * 60_000 }, async () => {
  const table = await run(process.execPath, [BENCH, '--quick', '--runs', '1', '--targets', TARGETS], { timeoutMs: 5 * 60_000 });
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split('\n').filter((l) => l.startsWith('| '));
  assert.equal(lines.length, 1 + ALL_ROWS.length, table.stdout);
  assert.ok(lines[0]!.includes(' proxy-ref ') && lines[0]!.includes(' ref/ctrd '), `no proxy-ref columns in:\n${table.stdout}`);
  assert.ok(lines[0]!.includes(' containerd CPU s p/r '), `no column for the proxy hop's CPU in:\n${table.stdout}`);
  for (const title of ['ingest', 'read 3.0 MiB, 1 MiB ReadAt', '32 KiB ReadAt', 'commit 20', 'Info', 'read 4 KiB blobs', '(memory)', 'ctr images pull']) {
    assert.ok(lines.some((l) => l.includes(title)), `no row "${title}" in:\n${table.stdout}`);
  }

  const json = await run(process.execPath, [BENCH, '--quick', '--runs', '1', '--targets', TARGETS, '--json', '--only', 'ingest,read-32k,pull'], { timeoutMs: 5 * 60_000 });
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as BenchJson;
  assert.deepEqual(report.rows.map((r) => r.id), ['ingest', 'read-32k', 'pull']);
  for (const row of report.rows) {
    const targets = row.id === 'pull' ? ['containerd', 'proxy', 'proxy-ref'] : ['direct', 'containerd', 'proxy', 'proxy-ref'];
    for (const name of targets) {
      const result = row.targets[name];
      assert.ok(result && result.median > 0 && result.peakRssBytes > 0, `${row.id} on ${name}: ${JSON.stringify(result)}`);
      // containerd's CPU is reported apart only where it is the hop in front of the store.
      const behind = name === 'proxy' || name === 'proxy-ref';
      assert.equal(typeof result.hopCpuSeconds, behind ? 'number' : 'undefined', `${row.id} on ${name}: hopCpuSeconds ${String(result.hopCpuSeconds)}`);
    }
    assert.ok(row.ratios.proxy !== null && row.ratios.proxy > 0, `${row.id}: no proxy ratio`);
    assert.ok(row.ratios.proxyRef !== null && row.ratios.proxyRef > 0, `${row.id}: no proxy-ref ratio`);
  }
  assert.ok(json.stdout.includes('"client": "go"'), 'containerd\'s Go proxy client is the default');

  // The grpc-js client drives every row the Go client does.
  const node = await run(process.execPath, [BENCH, '--quick', '--runs', '1', '--targets', 'direct,containerd', '--client', 'node', '--json', '--only', 'ingest,read-32k,commit-4k,info,read-4k'], { timeoutMs: 5 * 60_000 });
  assert.equal(node.code, 0, node.stderr);
  const nodeReport = JSON.parse(node.stdout) as BenchJson & { client: string };
  assert.equal(nodeReport.client, 'node');
  for (const row of nodeReport.rows) assert.ok(row.ratios.direct !== null && row.ratios.direct > 0, `${row.id} with --client node: ${JSON.stringify(row)}`);
});
