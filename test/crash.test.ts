// Crash safety: SIGKILL the server at random moments while many clients
// ingest, commit and delete; after each restart every acknowledged commit is
// there with the right bytes, acknowledged deletes stay deleted, interrupted
// ingests resume or abort cleanly, and start-up reconciliation leaves no
// orphan file, row or temp file. A second test traces the system calls of a
// commit to check the durability order a SIGKILL cannot reveal (fsync).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { WriteAction, type ContentClient } from '../generated/containerd/services/content/v1/content';
import { assertConsistentRoot } from './support/consistency';
import { CLI, startTestServer, type TestServer } from './support/server';
import { Strace, straceSkip } from './support/strace';
import { abort, contentClient, info, md, read, rejectsWith, remove, sha256, status, writeBlob, WriteSession } from './support/client';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 50);
const WORKERS = 8;
const NAMESPACES = ['crash-a', 'crash-b'];
/** Kept from the garbage collector, which deletes set off, as a containerd client keeps its content. */
const GC_ROOT = { 'containerd.io/gc.root': 'crash-test' };
/** A few blobs every namespace writes, so commits also take the "bytes already stored" path. */
const SHARED = Array.from({ length: 4 }, (_, i) => randomBytes(20_000 + i));

interface Blob {
  namespace: string;
  data: Buffer;
  digest: string;
}
interface Interrupted extends Blob {
  ref: string;
}

const key = (b: { namespace: string; digest: string }): string => `${b.namespace}/${b.digest}`;
const isCode = (e: unknown, ...codes: grpcStatus[]): boolean => codes.includes((e as ServiceError).code);

function newBlob(namespace: string): Blob {
  // Mostly small, sometimes MiBs so that kills also land inside long writes and fsyncs.
  const data = randomBytes(randomInt(100) < 5 ? randomInt(1 << 20, 3 << 20) : randomInt(1, 64 << 10));
  return { namespace, data, digest: sha256(data) };
}

/** What every round learns: the outcome of each request that got an answer before the kill. */
class Ledger {
  readonly committed = new Map<string, Blob>();
  /** Commits acknowledged in the current round. */
  readonly fresh: Blob[] = [];
  readonly deleted = new Map<string, Blob>();
  /** Ingests the kill cut short, by namespace and ref. */
  readonly interrupted = new Map<string, Interrupted>();
  readonly unexpected: string[] = [];
  killed = false;

  /** Failures after the kill are expected; before it they are bugs. */
  failed(what: string, e: unknown): void {
    if (!this.killed) this.unexpected.push(`${what}: ${(e as Error).message}`);
  }
}

/** One Write stream; the commit counts as acknowledged the moment its response arrives. */
async function ingest(client: ContentClient, ledger: Ledger, blob: Blob, ref: string, commit: boolean): Promise<void> {
  const session = new WriteSession(client, md(blob.namespace));
  const chunk = 64 << 10;
  try {
    const stat = await session.send({ action: WriteAction.STAT, ref, total: blob.data.length, expected: blob.digest });
    const end = commit ? blob.data.length : randomInt(1, blob.data.length + 1);
    for (let offset = stat.offset; offset < end; offset += chunk) {
      await session.send({ action: WriteAction.WRITE, offset, data: blob.data.subarray(offset, Math.min(end, offset + chunk)) });
    }
    if (commit) {
      await session.send({ action: WriteAction.COMMIT, offset: blob.data.length, total: blob.data.length, expected: blob.digest, labels: GC_ROOT });
      ledger.committed.set(key(blob), blob);
      ledger.fresh.push(blob);
    } else {
      ledger.interrupted.set(`${blob.namespace}/${ref}`, { ...blob, ref });
    }
    await session.close();
  } catch (e) {
    session.cancel();
    if (SHARED.some((s) => sha256(s) === blob.digest) && isCode(e, grpcStatus.ALREADY_EXISTS)) return;
    if (!ledger.committed.has(key(blob))) ledger.interrupted.set(`${blob.namespace}/${ref}`, { ...blob, ref });
    ledger.failed(`ingest ${ref}`, e);
  }
}

async function worker(client: ContentClient, ledger: Ledger, round: number, id: number): Promise<void> {
  const mine: Blob[] = [];
  for (let i = 0; !ledger.killed; i++) {
    const namespace = NAMESPACES[randomInt(NAMESPACES.length)]!;
    const ref = `r${round}-w${id}-${i}`;
    const dice = randomInt(100);
    if (dice >= 75 && dice < 85 && mine.length > 0) {
      // Reads while the kills come: a blob is served whole and right, or not at all.
      const blob = mine[randomInt(mine.length)]!;
      const served = await read(client, blob.digest, 0, 0, md(blob.namespace)).then(
        ({ data }) => data,
        (e: unknown) => ledger.failed(`read ${blob.digest}`, e),
      );
      if (served && !served.equals(blob.data)) ledger.unexpected.push(`${key(blob)}: served ${served.length} bytes that differ from what was committed`);
    } else if (dice >= 85 && mine.length > 0) {
      const victim = mine.splice(randomInt(mine.length), 1)[0]!;
      try {
        await remove(client, victim.digest, md(victim.namespace));
        ledger.committed.delete(key(victim));
        ledger.deleted.set(key(victim), victim);
      } catch (e) {
        // A delete cut short by the kill may or may not have happened.
        ledger.committed.delete(key(victim));
        ledger.failed(`delete ${victim.digest}`, e);
      }
    } else if (dice < 55 || dice >= 75) {
      const blob = newBlob(namespace);
      await ingest(client, ledger, blob, ref, true);
      if (ledger.committed.has(key(blob))) mine.push(blob);
    } else if (dice < 65) {
      const data = SHARED[randomInt(SHARED.length)]!;
      await ingest(client, ledger, { namespace, data, digest: sha256(data) }, ref, true);
    } else {
      await ingest(client, ledger, newBlob(namespace), ref, false);
    }
  }
}

async function assertServes(client: ContentClient, blob: Blob): Promise<void> {
  const got = await info(client, blob.digest, md(blob.namespace));
  assert.equal(got.size, blob.data.length, `${key(blob)}: size`);
  const { data } = await read(client, blob.digest, 0, 0, md(blob.namespace));
  assert.equal(sha256(data), blob.digest, `${key(blob)}: bytes`);
}

describe('crash safety', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.destroy());

  test(`${ROUNDS} SIGKILLs during concurrent ingests, commits and deletes lose nothing acknowledged`, async () => {
    const ledger = new Ledger();
    const hashed = new Set<string>();
    let resumed = 0;
    let aborted = 0;
    let reconciled = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const client = contentClient(server.address);
      ledger.killed = false;
      const workers = Array.from({ length: WORKERS }, (_, id) => worker(client, ledger, round, id));
      await new Promise((resolve) => setTimeout(resolve, randomInt(20, 200)));
      ledger.killed = true;
      await server.stop('SIGKILL');
      await Promise.all(workers);
      client.close();
      assert.deepEqual(ledger.unexpected, [], `round ${round}: failures before the kill`);

      await server.restart();
      if (/removed leftovers of interrupted work/.test(server.output())) reconciled++;
      assert.doesNotMatch(server.output(), /the store is damaged/, `round ${round}: start-up found damage`);
      assertConsistentRoot(server.root, hashed);

      const check = contentClient(server.address);
      try {
        // This round's acknowledged commits and deletes (the final pass reads every commit).
        const fresh = ledger.fresh.splice(0).filter((blob) => ledger.committed.has(key(blob)));
        await Promise.all(fresh.map((blob) => assertServes(check, blob)));
        await Promise.all([...ledger.deleted.values()].map((blob) => rejectsWith(info(check, blob.digest, md(blob.namespace)), 'NOT_FOUND')));
        ledger.deleted.clear();
        // Interrupted ingests: half resume where the server says they stand, half abort.
        const settle = async (stopped: Interrupted): Promise<void> => {
          if (randomInt(2) === 0) {
            try {
              await writeBlob(check, stopped.ref, stopped.data, { metadata: md(stopped.namespace), chunk: 256 << 10, labels: GC_ROOT });
            } catch (e) {
              // Its commit landed just before the kill, unacknowledged: then it must be whole.
              if (!isCode(e, grpcStatus.ALREADY_EXISTS)) throw e;
            }
            ledger.committed.set(key(stopped), stopped);
            await assertServes(check, stopped);
            resumed++;
          } else {
            await abort(check, stopped.ref, md(stopped.namespace)).catch((e: unknown) => {
              if (!isCode(e, grpcStatus.NOT_FOUND)) throw e;
            });
            await rejectsWith(status(check, stopped.ref, md(stopped.namespace)), 'NOT_FOUND');
            aborted++;
          }
        };
        await Promise.all([...ledger.interrupted.values()].map(settle));
        ledger.interrupted.clear();
      } finally {
        check.close();
      }
    }
    // All of it, once more, from a clean start and through fsck's re-hash.
    await server.stop();
    const fsck = spawnSync(process.execPath, [CLI, 'fsck', '--root', server.root, '--json'], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
    await server.restart();
    const summary = assertConsistentRoot(server.root);
    const client = contentClient(server.address);
    try {
      await Promise.all([...ledger.committed.values()].map((blob) => assertServes(client, blob)));
    } finally {
      client.close();
    }
    assert.ok(ledger.committed.size > ROUNDS, `enough commits were acknowledged (${ledger.committed.size})`);
    assert.ok(resumed > 0 && aborted > 0, `interrupted ingests were resumed (${resumed}) and aborted (${aborted})`);
    process.stdout.write(
      `# crash: ${ROUNDS} kills, ${ledger.committed.size} commits kept, ${resumed} ingests resumed, ${aborted} aborted, ${reconciled} start-ups cleared leftovers, ${summary.blobs} blobs on disk\n`,
    );
  });
});

describe('commit durability order', { skip: straceSkip('crash') }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.destroy());

  test('the staged bytes and the blob name are synced before the row, the row before the reply and before the ingest goes', async () => {
    const client = contentClient(server.address);
    const data = randomBytes(100_000);
    // Each sync starts 50 ms late, so that a write that does not wait for one shows up in the trace before its return.
    const strace = await Strace.attach(
      server.process.pid!,
      `${server.root}.strace`,
      ['-e', 'inject=fsync,fdatasync:delay_enter=50000', '-e', 'trace=fsync,fdatasync,link,linkat,rename,renameat,renameat2,unlink,unlinkat,pwrite64,write,writev'],
      () => info(client, sha256(data), md('order')).catch(() => undefined),
    );
    let traced: Awaited<ReturnType<Strace['stop']>>;
    try {
      await writeBlob(client, 'order', data, { metadata: md('order') });
    } finally {
      client.close();
      traced = await strace.stop();
    }
    const { lines, stderr: straceErr } = traced;
    const hex = sha256(data).slice('sha256:'.length);
    const at = (what: string, pattern: RegExp, from = 0): number => {
      const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
      assert.ok(index >= 0, `no ${what} in the trace (from line ${from}): ${straceErr}\n${lines.slice(from).join('\n').slice(0, 4000)}`);
      return index;
    };
    /** Where a sync that starts at line start returns: strace -f splits a call another thread interrupts. */
    const returned = (start: number): number => {
      const line = lines[start]!;
      if (!line.includes('<unfinished ...>')) return start;
      const [pid, call] = [/^\d+/.exec(line)![0], /(f(data)?sync)\(/.exec(line)![1]!];
      return at(`return from the ${call} at line ${start}`, new RegExp(`^${pid}\\s+<\\.\\.\\. ${call} resumed>`), start + 1);
    };
    const linked = at('link to the blob', new RegExp(`link(at)?\\(.*ingest/([0-9a-f-]+)".*blobs/sha256/${hex}"`));
    const id = new RegExp(`ingest/([0-9a-f-]+)"`).exec(lines[linked]!)![1]!;
    // The name may reach the disk first: without a row it is never served, and start-up reconciliation removes it.
    const bytesSynced = returned(at('fsync of the staged bytes', new RegExp(`f(data)?sync\\(\\d+<[^>]*ingest/${id}>`), linked));
    const nameSynced = returned(at('fsync of blobs/sha256', /f(data)?sync\(\d+<[^>]*blobs\/sha256>/, linked));
    const walWrite = at('the commit written to the WAL', /pwrite64\(\d+<[^>]*metadata\.db-wal>/, linked);
    assert.ok(bytesSynced < walWrite, 'the staged bytes are on disk before the row is written');
    assert.ok(nameSynced < walWrite, 'the blob name is on disk before the row is written');
    const walSync = returned(at('the WAL synced', /f(data)?sync\(\d+<[^>]*metadata\.db-wal>/, walWrite));
    // The COMMIT response is the first thing written to the client's socket after the row (the blob was linked
    // earlier, before the last WRITE's response: see Store.publishEarly).
    const acknowledged = at('the COMMIT response', /writev?\(\d+<UNIX/, walWrite);
    assert.ok(walSync < acknowledged, 'the row is on disk before the client hears of the commit');
    at('the staged name removed after the row', new RegExp(`unlink(at)?\\(.*ingest/${id}"`), walWrite);
  });
});
