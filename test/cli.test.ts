// The read-only CLI commands (ls, du, info) against a store a real server is
// writing, --help on every command, and the shared progress helper.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import winston from 'winston';
import { createProgress } from '../src/cli/progress';
import { loadConfig } from '../src/config/config';
import { RootLockedError } from '../src/db/root-lock';
import { openStore } from '../src/server/server';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { contentClient, md, sha256, WriteSession, writeBlob } from './support/client';
import { cli } from './support/cli';
import { startTestServer, type TestServer } from './support/server';


async function json<T>(args: string[]): Promise<T> {
  const res = await cli([...args, '--json']);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout) as T;
}

interface LsRow {
  namespace: string;
  digest: string;
  size: number;
  createdAt: string;
  updatedAt: string;
  labels: Record<string, string>;
}

describe('ls, du and info on a store the server is writing', () => {
  let server: TestServer;
  const one = randomBytes(1500);
  const two = randomBytes(70_000);
  const [d1, d2] = [sha256(one), sha256(two)];
  before(async () => {
    server = await startTestServer();
    const client = contentClient(server.address);
    await writeBlob(client, 'one', one, { metadata: md('default'), labels: { 'containerd.io/gc.root': '2024-01-01' } });
    await writeBlob(client, 'one', one, { metadata: md('k8s.io') });
    await writeBlob(client, 'two', two, { metadata: md('k8s.io'), labels: { a: '1', b: '2' } });
    // An ingest left half-written.
    const session = new WriteSession(client, md('k8s.io'));
    await session.send({ action: WriteAction.WRITE, ref: 'partial', offset: 0, data: Buffer.from('half') });
    await session.close().catch(() => undefined);
    client.close();
  });
  after(async () => {
    await server.destroy();
  });

  test('ls lists every namespace with digests, sizes, times and labels', async () => {
    const rows = await json<LsRow[]>(['ls', '--root', server.root]);
    const expected = [
      { namespace: 'default', digest: d1, size: one.length, labels: { 'containerd.io/gc.root': '2024-01-01' } },
      ...[
        { namespace: 'k8s.io', digest: d1, size: one.length, labels: {} },
        { namespace: 'k8s.io', digest: d2, size: two.length, labels: { a: '1', b: '2' } },
      ].sort((x, y) => x.digest.localeCompare(y.digest)),
    ];
    assert.deepEqual(
      rows.map(({ namespace, digest, size, labels }) => ({ namespace, digest, size, labels })),
      expected,
    );
    for (const row of rows) assert.match(row.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);

    const human = await cli(['ls', '--root', server.root, '-n', 'k8s.io']);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAMESPACE\s+DIGEST\s+SIZE\s+CREATED\s+LABELS$/);
    assert.equal(lines.length, 3);
    assert.ok(lines.some((l) => l.includes(d2) && l.includes('68.4 KiB') && l.endsWith('a=1,b=2')), human.stdout);
    assert.ok(lines.some((l) => l.includes(d1) && l.endsWith(' -')), human.stdout);
  });

  test('ls filters with containerd syntax, and -q prints each digest once', async () => {
    const rooted = await json<LsRow[]>(['ls', '--root', server.root, 'labels."containerd.io/gc.root"']);
    assert.deepEqual(rooted.map((r) => [r.namespace, r.digest]), [['default', d1]]);
    // Several filters are ORed.
    const either = await json<LsRow[]>(['ls', '--root', server.root, `digest==${d2}`, 'labels.a==nope']);
    assert.deepEqual(either.map((r) => r.digest), [d2]);
    const quiet = await cli(['ls', '--root', server.root, '-q']);
    assert.deepEqual(quiet.stdout.trim().split('\n').sort(), [d1, d2].sort());
    const bad = await cli(['ls', '--root', server.root, 'labels.a==']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^contentd: filters: parse error/);
  });

  test('du totals each namespace and counts shared blobs once in "stored"', async () => {
    const report = await json<{ namespaces: unknown[]; stored: unknown }>(['du', '--root', server.root]);
    assert.deepEqual(report, {
      namespaces: [
        { namespace: 'default', blobs: 1, bytes: one.length, ingests: 0 },
        { namespace: 'k8s.io', blobs: 2, bytes: one.length + two.length, ingests: 1 },
      ],
      stored: { blobs: 2, bytes: one.length + two.length },
    });
    const human = await cli(['du', '--root', server.root]);
    assert.match(human.stdout, /^k8s\.io\s+2\s+69\.8 KiB\s+1$/m);
    assert.match(human.stdout, new RegExp(`^stored: 2 blobs, 69\\.8 KiB \\(${one.length + two.length} bytes\\)$`, 'm'));
  });

  test('info shows a blob and every namespace that references it', async () => {
    const shown = await json<{ digest: string; size: number; storedAt: string; namespaces: Array<{ namespace: string; labels: Record<string, string> }> }>([
      'info',
      '--root',
      server.root,
      d1,
    ]);
    assert.equal(shown.digest, d1);
    assert.equal(shown.size, one.length);
    assert.deepEqual(
      shown.namespaces.map((n) => [n.namespace, n.labels]),
      [
        ['default', { 'containerd.io/gc.root': '2024-01-01' }],
        ['k8s.io', {}],
      ],
    );
    const human = await cli(['info', '--root', server.root, d2, '-n', 'k8s.io']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^size: +${two.length} \\(68\\.4 KiB\\)$`, 'm'));
    assert.match(human.stdout, /^ {2}labels: +a=1,b=2$/m);

    const absent = await cli(['info', '--root', server.root, sha256(Buffer.from('absent'))]);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /not found/);
    const elsewhere = await cli(['info', '--root', server.root, d2, '-n', 'default']);
    assert.equal(elsewhere.code, 1);
    assert.match(elsewhere.stderr, /not found in namespace "default"/);
    const malformed = await cli(['info', '--root', server.root, 'sha256:xyz']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /invalid|digest/i);
  });

  test('the store is found through --config as well as --root, before or after the command', async () => {
    const file = join(server.root, 'cli.toml');
    await writeFile(file, `root = ${JSON.stringify(server.root)}\n`);
    for (const args of [['--config', file, 'ls', '-q'], ['ls', '-q', '--config', file], ['--root', server.root, 'ls', '-q']]) {
      const res = await cli(args);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim().split('\n').length, 2, args.join(' '));
    }
  });

  test('opening the store for writing is refused while the server holds it', async () => {
    const config = loadConfig();
    config.root = server.root;
    const logger = winston.createLogger({ silent: true });
    await assert.rejects(openStore(config, logger), (e: unknown) => e instanceof RootLockedError && /in use by another contentd process/.test(e.message));
  });

  test('read-only commands work on a stopped server, and say clearly when there is no store', async () => {
    await server.stop();
    assert.equal(existsSync(join(server.root, 'metadata.db-wal')), false, 'a clean stop checkpoints the WAL away');
    const rows = await json<LsRow[]>(['ls', '--root', server.root]);
    assert.equal(rows.length, 3);
    const missing = await cli(['du', '--root', join(server.root, 'nowhere')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no content store at .*nowhere/);
  });
});

describe('--help', () => {
  test('every command has --help that shows its options and the global --root and --config', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    const commands = [...top.stdout.split('Commands:')[1]!.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    for (const required of ['serve', 'health', 'ls', 'du', 'info']) assert.ok(commands.includes(required), `${required} in ${commands.join(', ')}`);
    for (const command of commands) {
      const res = await cli([command, '--help']);
      assert.equal(res.code, 0, `${command} --help: ${res.stderr}`);
      assert.match(res.stdout, new RegExp(`^Usage: contentd ${command} `), command);
      assert.match(res.stdout, /--root <dir>/, command);
      assert.match(res.stdout, /--config <file>/, command);
    }
  });
});

describe('progress helper', () => {
  function sink(isTTY: boolean): { stream: Writable & { isTTY: boolean; columns: number }; text: () => string } {
    let text = '';
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          text += chunk.toString();
          callback();
        },
      }),
      { isTTY, columns: 100 },
    );
    return { stream, text: () => text };
  }

  test('draws a bar in place on a terminal', () => {
    const out = sink(true);
    const progress = createProgress('checking', { total: 4, stream: out.stream });
    for (let i = 0; i < 4; i++) progress.advance();
    progress.done('ok');
    assert.match(out.text(), /^\rchecking \[-{30}\]\s+0% 0\/4\x1b\[K/);
    assert.ok(out.text().endsWith(`\rchecking [${'#'.repeat(30)}] 100% 4/4 - ok\x1b[K\n`), JSON.stringify(out.text()));
  });

  test('writes plain lines elsewhere, in bytes when asked', () => {
    const out = sink(false);
    const progress = createProgress('importing', { total: 4096, bytes: true, stream: out.stream, lineIntervalMs: 0 });
    progress.advance(1024);
    progress.advance(3072);
    progress.done();
    progress.advance(1);
    assert.equal(out.text(), 'importing: 1.00 KiB/4.00 KiB (25%)\nimporting: 4.00 KiB/4.00 KiB (100%)\nimporting: 4.00 KiB/4.00 KiB (100%)\n');
    const counting = sink(false);
    const open = createProgress('scanning', { stream: counting.stream });
    open.advance(7);
    open.done('2 found');
    assert.equal(counting.text(), 'scanning: 7 - 2 found\n');
  });
});
