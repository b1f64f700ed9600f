// containerd's own client against contentd, no containerd in between:
// `ctr -a <contentd socket> content ...` (ctr sends namespace "default").
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WriteAction } from '../generated/containerd/services/content/v1/content';
import { abort, info, md, rejectsWith, sha256, WriteSession } from './support/client';
import { CTR_BIN } from './support/containerd';
import { blobOnDisk, contentRows } from './support/disk';
import { serverFixture } from './support/fixture';
import { run, type RunResult } from './support/process';

const ctrMissing = ((): string | undefined => {
  const res = spawnSync(CTR_BIN, ['--version'], { encoding: 'utf8' });
  return res.error || res.status !== 0 ? `${CTR_BIN} is not available (${res.error?.message ?? res.stderr.trim()}); install containerd` : undefined;
})();
if (ctrMissing && process.env.CI === 'true') throw new Error(`${ctrMissing} (required when CI=true)`);

const DEFAULT = md('default');

describe('ctr content', { skip: ctrMissing ? `skipped: ${ctrMissing}` : false }, () => {
  const fx = serverFixture();
  /** stdin comes from a file: ctr may exit without reading it all (content already stored), which a pipe would turn into EPIPE. */
  const ctr = async (args: string[], input?: Buffer): Promise<RunResult> => {
    if (!input) return run(CTR_BIN, ['-a', fx.server.address, 'content', ...args], { timeoutMs: 60_000 });
    const file = join(fx.server.root, `stdin-${randomBytes(4).toString('hex')}`);
    await writeFile(file, input);
    const handle = await open(file, 'r');
    try {
      return await run(CTR_BIN, ['-a', fx.server.address, 'content', ...args], { stdinFd: handle.fd, timeoutMs: 60_000 });
    } finally {
      await handle.close();
      await rm(file);
    }
  };
  const ctrOk = async (args: string[], input?: Buffer): Promise<string> => {
    const res = await ctr(args, input);
    assert.equal(res.code, 0, `ctr content ${args.join(' ')}: ${res.stderr}`);
    return res.stdout;
  };
  const big = randomBytes(5 * 1024 * 1024 + 99);
  const digest = sha256(big);

  test('ingest stores a 5 MiB blob in namespace "default"', async () => {
    await ctrOk(['ingest', '--expected-size', String(big.length), '--expected-digest', digest, 'ctr-ingest'], big);
    const got = await info(fx.client, digest, DEFAULT);
    assert.equal(got.size, big.length);
    assert.deepEqual(blobOnDisk(fx.server.root, digest), big);
    assert.deepEqual(contentRows(fx.server.root, digest).map((r) => r.namespace), ['default']);
    // Content ctr can see is not in the global namespace.
    await rejectsWith(info(fx.client, digest), 'NOT_FOUND');
  });

  test('ingest of content already stored succeeds', async () => {
    await ctrOk(['ingest', '--expected-digest', digest, 'ctr-again'], big);
  });

  test('get writes the blob to stdout', async () => {
    const res = await ctr(['get', digest]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdoutBytes.length, big.length);
    assert.ok(res.stdoutBytes.equals(big), 'same bytes');
  });

  test('ls lists digest and size, and filters', async () => {
    const out = await ctrOk(['ls']);
    const line = out.split('\n').find((l) => l.startsWith(digest));
    assert.ok(line, out);
    assert.match(line, /\s5\.24\dMB\s/);
    assert.deepEqual((await ctrOk(['ls', '-q'])).trim().split('\n'), [digest]);
    assert.equal((await ctrOk(['ls', '-q', 'labels.none==x'])).trim(), '');
    assert.equal((await ctrOk(['ls', '-q', `digest==${digest}`])).trim(), digest);
  });

  test('label sets and removes labels', async () => {
    const out = await ctrOk(['label', digest, 'a=1', 'b=2']);
    assert.deepEqual(out.trim().split(',').sort(), ['a=1', 'b=2']);
    assert.deepEqual((await info(fx.client, digest, DEFAULT)).labels, { a: '1', b: '2' });
    assert.equal((await ctrOk(['label', digest, 'a='])).trim(), 'b=2');
    assert.deepEqual((await info(fx.client, digest, DEFAULT)).labels, { b: '2' });
    assert.equal((await ctrOk(['ls', '-q', 'labels.b==2'])).trim(), digest);
  });

  test('active shows ingests in progress, filtered by its argument', async () => {
    const session = new WriteSession(fx.client, DEFAULT);
    await session.send({ action: WriteAction.STAT, ref: 'staged-by-ctr-test' });
    await session.send({ action: WriteAction.WRITE, offset: 0, data: randomBytes(2048) });
    await session.close();
    const out = await ctrOk(['active']);
    assert.match(out, /^REF\s+SIZE\s+AGE/);
    assert.match(out, /staged-by-ctr-test\s+2\.048kB/);
    assert.match(await ctrOk(['active', 'ref~=^staged']), /staged-by-ctr-test/);
    assert.doesNotMatch(await ctrOk(['active', 'ref==other']), /staged-by-ctr-test/);
    await abort(fx.client, 'staged-by-ctr-test', DEFAULT);
    assert.doesNotMatch(await ctrOk(['active']), /staged-by-ctr-test/);
  });

  test('an ingest that does not match its expected digest fails and stays active', async () => {
    const data = randomBytes(1000);
    const res = await ctr(['ingest', '--expected-digest', sha256(Buffer.from('something else')), 'ctr-mismatch'], data);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /unexpected commit digest|failed precondition/i);
    assert.match(await ctrOk(['active']), /ctr-mismatch\s+1kB/);
    await abort(fx.client, 'ctr-mismatch', DEFAULT);
  });

  test('rm removes content from the namespace; get of it then fails', async () => {
    await ctrOk(['rm', digest]);
    await rejectsWith(info(fx.client, digest, DEFAULT), 'NOT_FOUND');
    assert.equal((await ctrOk(['ls', '-q'])).trim(), '');
    // ctr treats NOT_FOUND from Delete as done, so a second rm succeeds too.
    await ctrOk(['rm', digest]);
    const get = await ctr(['get', digest]);
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /not found/);
  });
});
