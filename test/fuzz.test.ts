// Fuzzing, for a bounded time: random and mutated protobuf bytes at every
// Content method through a raw client, then random action sequences at the
// Write stream. Every call ends with a status a client can act on; the server
// never crashes, leaks no descriptors, and its root stays consistent.
// FUZZ_SEED replays a run; FUZZ_SECONDS sets each phase's length.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ContentService, WriteAction, type ContentClient } from '../generated/containerd/services/content/v1/content';
import { assertConsistentRoot } from './support/consistency';
import { CRASH_IN_LOG, startTestServer, type TestServer } from './support/server';
import { contentClient, md, read, sha256, writeBlob, WriteSession } from './support/client';
import { openFds, settle } from './support/proc';
import { CONTENT_METHODS, rawCall, rawContentClient, type ContentMethod } from './support/raw';

const SEED = Number(process.env.FUZZ_SEED ?? randomInt(2 ** 31));
const PHASE_MS = Number(process.env.FUZZ_SECONDS ?? 10) * 1000;
const CONCURRENCY = 16;

/** mulberry32: small, seedable, good enough to pick test inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const int = (n: number): number => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));

const PAYLOADS = [Buffer.alloc(0), Buffer.from('fuzz'), bytes(1000), bytes(70_000)];
const KNOWN = PAYLOADS.map(sha256);
const REFS = Array.from({ length: 12 }, (_, i) => `fuzz-${i}`);
const NAMESPACES = ['', 'fuzz-a', 'fuzz-b'];

function digest(): string {
  return pick([...KNOWN, sha256(bytes(8)), '', 'sha256:zz', `md5:${'0'.repeat(32)}`, `sha256:${'a'.repeat(65)}`]);
}
function text(): string {
  return pick(['', 'x', 'labels.k', 'ref/with/../slashes', '\u0000', 'é'.repeat(int(50)), 'k'.repeat(int(5000))]);
}
function number(): number {
  return pick([0, 1, -1, int(100_000), -int(100_000), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 31, 2 ** 32 + 1]);
}
function labels(): Record<string, string> {
  return Object.fromEntries(Array.from({ length: int(3) }, () => [text() || 'k', text()]));
}

/** A well-formed request for method, with hostile field values. */
function wellFormed(method: ContentMethod): Buffer {
  const timestamp = { seconds: number(), nanos: int(2 ** 30) };
  switch (method) {
    case 'info':
      return ContentService.info.requestSerialize({ digest: digest() });
    case 'update':
      return ContentService.update.requestSerialize({
        info: { digest: digest(), size: number(), createdAt: timestamp, updatedAt: timestamp, labels: labels() },
        updateMask: Array.from({ length: int(3) }, () => pick(['labels', 'labels.k', 'size', text()])),
      });
    case 'list':
      return ContentService.list.requestSerialize({ filters: Array.from({ length: int(3) }, () => pick(['labels.k==v', 'digest~=^sha', '((', text()])) });
    case 'delete':
      return ContentService.delete.requestSerialize({ digest: digest() });
    case 'read':
      return ContentService.read.requestSerialize({ digest: digest(), offset: number(), size: number() });
    case 'status':
      return ContentService.status.requestSerialize({ ref: pick([...REFS, text()]) });
    case 'listStatuses':
      return ContentService.listStatuses.requestSerialize({ filters: [pick(['ref==fuzz-1', 'ref~=fuzz', 'expected==', text()])] });
    case 'write':
      return ContentService.write.requestSerialize({
        action: pick([WriteAction.STAT, WriteAction.WRITE, WriteAction.COMMIT, 3 as WriteAction, -1 as WriteAction]),
        ref: pick([...REFS, text()]),
        total: number(),
        expected: digest(),
        offset: number(),
        data: pick(PAYLOADS).subarray(0, int(70_000)),
        labels: labels(),
      });
    case 'abort':
      return ContentService.abort.requestSerialize({ ref: pick([...REFS, text()]) });
  }
}

/** Random bytes, or a well-formed request with bytes flipped, cut, inserted or fields appended. */
function message(method: ContentMethod): Buffer {
  const kind = int(5);
  if (kind === 0) return bytes(int(300));
  const base = wellFormed(method);
  if (kind === 1) return base;
  const at = int(base.length + 1);
  if (kind === 2) return Buffer.concat([base.subarray(0, at), bytes(1 + int(8)), base.subarray(at)]);
  if (kind === 3) return base.subarray(0, at);
  // An unknown or repeated field of a random wire type.
  return Buffer.concat([base, Buffer.from([(1 + int(40)) * 8 + int(8)]), bytes(int(20))]);
}

/** Answers a client can act on: everything but crashes, hangs and unexplained internal errors. */
const EXPECTED = new Set([
  grpcStatus.OK,
  grpcStatus.INVALID_ARGUMENT,
  grpcStatus.NOT_FOUND,
  grpcStatus.ALREADY_EXISTS,
  grpcStatus.FAILED_PRECONDITION,
  grpcStatus.OUT_OF_RANGE,
  grpcStatus.UNAVAILABLE,
  grpcStatus.RESOURCE_EXHAUSTED,
]);
function unexpected(code: grpcStatus, details: string): boolean {
  // Bytes that are not a message of the method's type: what Go's gRPC answers too.
  if (code === grpcStatus.INTERNAL && /^Error deserializing request/.test(details)) return false;
  return !EXPECTED.has(code);
}

function metadata(): Metadata {
  const namespace = pick([...NAMESPACES, 'bad namespace!', 'x'.repeat(100)]);
  const m = new Metadata();
  if (namespace) m.set('containerd-namespace', namespace);
  return m;
}

async function forAWhile(workers: number, work: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + PHASE_MS;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (Date.now() < deadline) await work();
    }),
  );
}

describe(`fuzz (FUZZ_SEED=${SEED})`, () => {
  let server: TestServer;
  let fds = 0;
  before(async () => {
    server = await startTestServer();
    const client = contentClient(server.address);
    for (const [i, payload] of PAYLOADS.entries()) await writeBlob(client, `known-${i}`, payload, { metadata: md('fuzz-a') });
    client.close();
    fds = openFds(server.process.pid!);
  });
  after(() => server.destroy());

  test('random and mutated protobuf bytes at every method', { timeout: PHASE_MS + 60_000 }, async () => {
    const clients = Array.from({ length: 4 }, () => rawContentClient(server.address));
    const surprises: string[] = [];
    let calls = 0;
    try {
      await forAWhile(CONCURRENCY, async () => {
        const method = pick(CONTENT_METHODS);
        const requests = Array.from({ length: method === 'write' ? 1 + int(6) : 1 }, () => message(method));
        const outcome = await rawCall(pick(clients), method, requests, metadata());
        calls++;
        if (unexpected(outcome.code, outcome.details)) surprises.push(`${method}: ${grpcStatus[outcome.code]} ${outcome.details.slice(0, 200)}`);
      });
    } finally {
      for (const c of clients) c.close();
    }
    assert.deepEqual(surprises.slice(0, 20), [], `${surprises.length} of ${calls} calls ended unexpectedly`);
    assert.equal(server.process.exitCode, null);
    process.stdout.write(`# fuzz: ${calls} raw calls\n`);
  });

  test('random action sequences at the Write stream', { timeout: PHASE_MS + 60_000 }, async () => {
    const clients = Array.from({ length: 4 }, () => contentClient(server.address));
    const abandoned: WriteSession[] = [];
    const surprises: string[] = [];
    let steps = 0;
    const session = async (client: ContentClient): Promise<void> => {
      const stream = new WriteSession(client, metadata());
      let offset = 0;
      let first = true;
      for (let n = 1 + int(8); n > 0; n--) {
        const action = pick([WriteAction.STAT, WriteAction.WRITE, WriteAction.WRITE, WriteAction.COMMIT, 9 as WriteAction]);
        const data = pick(PAYLOADS);
        const at = pick([offset, offset, 0, offset + 1, -1, Number.MAX_SAFE_INTEGER]);
        try {
          const res = await stream.send({
            action,
            ref: first || int(4) === 0 ? pick([...REFS, '']) : '',
            total: pick([0, 0, data.length, number()]),
            expected: pick(['', '', ...KNOWN, digest()]),
            offset: at,
            data: action === WriteAction.STAT ? Buffer.alloc(0) : data.subarray(0, int(data.length + 1)),
            labels: int(3) === 0 ? labels() : {},
          });
          offset = res.offset;
          first = false;
          steps++;
        } catch (e) {
          const err = e as ServiceError;
          // The server ends the call after a commit: a later send finds it over.
          if (err.code === undefined && /stream ended/.test(err.message)) return;
          if (unexpected(err.code, err.details)) surprises.push(`${WriteAction[action] ?? action} @${at}: ${grpcStatus[err.code]} ${err.details}`);
          return;
        }
      }
      const ending = int(3);
      if (ending === 0) await stream.close().catch(() => undefined);
      else if (ending === 1) stream.cancel();
      else abandoned.push(stream);
    };
    try {
      await forAWhile(CONCURRENCY, () => session(pick(clients)));
    } finally {
      for (const stream of abandoned) stream.cancel();
    }
    assert.deepEqual(surprises.slice(0, 20), [], `${surprises.length} unexpected endings`);
    assert.equal(server.process.exitCode, null);

    // Everything the fuzzing opened is closed again, and the server still serves.
    const after = await settle(() => openFds(server.process.pid!), (n) => n <= fds + clients.length);
    assert.ok(after <= fds + clients.length, `open files back to ${fds} (+${clients.length} connections), now ${after}`);
    const data = bytes(5000);
    await writeBlob(clients[0]!, 'after-fuzz', data, { metadata: md('calm'), labels: { 'containerd.io/gc.root': 'fuzz' } });
    assert.deepEqual((await read(clients[0]!, sha256(data), 0, 0, md('calm'))).data, data);
    for (const c of clients) c.close();
    process.stdout.write(`# fuzz: ${steps} Write steps, ${abandoned.length} streams abandoned\n`);
  });

  test('the root is consistent after it all', async () => {
    await server.stop();
    assert.doesNotMatch(server.output(), CRASH_IN_LOG);
    assertConsistentRoot(server.root);
  });
});
