// The gRPC transport itself (src/rpc): routing, content-type, deadlines,
// grpc-message encoding, message framing across and within DATA frames,
// refused messages, and client resets, against a real `contentd serve` over
// its unix socket; then MessageDecoder on its own.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import {
  ContentService,
  InfoRequest,
  InfoResponse,
  ReadContentRequest,
  WriteAction,
  WriteContentRequest,
  WriteContentResponse,
  type ContentClient,
} from '../generated/containerd/services/content/v1/content';
import { FrameError, MessageDecoder } from '../src/rpc/framing';
import { contentClient, info, md, read, rejectsWith, sha256, writeBlob, WriteSession } from './support/client';
import { rawContentClient } from './support/raw';
import { connectRaw, grpcFrame, RawCall, rawUnary, type RawResult } from './support/raw-grpc';
import { destroySurvivor, startTestServer, type TestServer } from './support/server';

const NS = 'rpc';
const INFO = ContentService.info.path;
const READ = ContentService.read.path;
const WRITE = ContentService.write.path;

const infoRequest = (digest: string): Uint8Array => InfoRequest.encode({ digest }).finish();
const writeRequest = (req: Partial<WriteContentRequest>): Uint8Array =>
  WriteContentRequest.encode({ action: WriteAction.STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...req }).finish();

/** promise, or a failure naming what never happened (a broken server must fail the test, not hang it). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The kernel send buffer (ss's skmem tb) of each connection server has accepted (not its stdio, socketpairs too). */
async function sendBuffers(server: TestServer): Promise<number[]> {
  const { stdout } = await promisify(execFile)('ss', ['-xmpnH', 'state', 'connected', 'src', server.address]);
  const lines = stdout.split('\n');
  // skmem is on the socket's line, or on the next one where ss wraps.
  return lines.flatMap((line, i) => (line.includes(`pid=${server.process.pid!},`) ? [Number(/\btb(\d+)/.exec(`${line} ${lines[i + 1] ?? ''}`)![1])] : []));
}

function assertStatus(result: RawResult, code: keyof typeof grpcStatus, message?: RegExp): void {
  assert.equal(result.httpStatus, 200);
  assert.equal(result.grpcStatus === undefined ? 'none' : grpcStatus[result.grpcStatus], code, `grpc-message: ${result.message}`);
  if (message) assert.match(result.message, message);
}

describe('gRPC transport, against contentd serve', () => {
  let server: TestServer;
  let client: ContentClient;
  let session: ClientHttp2Session;
  const blob = randomBytes(8 << 20);
  const digest = sha256(blob);

  before(async () => {
    server = await startTestServer();
    client = contentClient(server.address);
    await writeBlob(client, 'blob', blob, { metadata: md(NS) });
    session = connectRaw(server.address);
  });
  after(async () => {
    // Optional chaining for a failed before(): a server left running would keep the test process alive.
    session?.destroy();
    client?.close();
    if (server) await destroySurvivor(server);
  });

  /** The server still answers on the shared raw connection. */
  async function stillServing(): Promise<void> {
    const result = await within(rawUnary(session, INFO, infoRequest(digest), { namespace: NS }), 5000, 'Info after');
    assertStatus(result, 'OK');
    assert.equal(InfoResponse.decode(result.messages[0]!).info?.size, blob.length);
  }

  test('an unknown method: UNIMPLEMENTED naming the path, on the wire and at a grpc-js client', async () => {
    const path = '/containerd.services.content.v1.Content/Nope';
    assertStatus(await within(rawUnary(session, path, infoRequest(digest), { namespace: NS }), 5000, 'unknown method'), 'UNIMPLEMENTED', new RegExp(path));
    const raw = rawContentClient(server.address);
    try {
      const err = await new Promise<ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md(NS), (e) => resolve(e)),
      );
      assert.ok(err, 'the call failed');
      assert.equal(grpcStatus[err.code], 'UNIMPLEMENTED');
      assert.ok(err.details.includes(path), err.details);
    } finally {
      raw.close();
    }
  });

  test('a request with content-type text/plain: HTTP 415, no gRPC status', async () => {
    const call = new RawCall(session, INFO, { namespace: NS, contentType: 'text/plain' });
    call.stream.end(grpcFrame(infoRequest(digest)));
    const result = await within(call.result, 5000, 'text/plain request');
    assert.equal(result.httpStatus, 415);
    assert.equal(result.grpcStatus, undefined);
    await stillServing();
  });

  test('grpc-timeout: an idle Write stream gets DEADLINE_EXCEEDED from the server, and its ref is free again', async () => {
    // A raw client, because grpc-js enforces a deadline itself (it resets the stream):
    // this one keeps the stream open, so only the server's own timer can end the call.
    const data = randomBytes(1000);
    const call = new RawCall(session, WRITE, { namespace: NS, timeout: '300m' });
    const started = Date.now();
    await call.write(grpcFrame(writeRequest({ action: WriteAction.STAT, ref: 'deadline', total: data.length, expected: sha256(data) })));
    await call.nextMessage();
    await call.write(grpcFrame(writeRequest({ action: WriteAction.WRITE, offset: 0, data })));
    assert.equal(WriteContentResponse.decode(await call.nextMessage()).offset, data.length);
    const result = await within(call.result, 5000, 'the server’s deadline');
    assertStatus(result, 'DEADLINE_EXCEEDED');
    assert.ok(Date.now() - started >= 250, `ended after ${Date.now() - started} ms, before its 300 ms deadline`);

    // The lock went with the call (a locked ref is UNAVAILABLE after ~1 s of waiting).
    const next = new WriteSession(client, md(NS));
    assert.equal((await within(next.send({ action: WriteAction.STAT, ref: 'deadline' }), 5000, 'STAT after the deadline')).offset, data.length);
    const commit = await next.send({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) });
    assert.equal(commit.digest, sha256(data));
    await next.close();
  });

  test('grpc-message: non-ASCII and % characters arrive intact (percent-encoded on the wire)', async () => {
    // Echoed back in parseDigest's message; "%25" catches a decoder that decodes twice.
    const bad = 'sha256:é%25€😀 100%';
    const err = await rejectsWith(info(client, bad, md(NS)), 'INVALID_ARGUMENT');
    assert.ok(err.details.includes(JSON.stringify(bad)), `details: ${err.details}`);

    const result = await within(rawUnary(session, INFO, infoRequest(bad), { namespace: NS }), 5000, 'Info');
    assertStatus(result, 'INVALID_ARGUMENT');
    assert.match(result.rawMessage, /^[\x20-\x7e]*$/, 'the header carries printable ASCII only');
    assert.equal(result.message, err.details);
  });

  test('a request split over several DATA frames, and two requests in one: both answered', async () => {
    // Info: the prefix in one write, the message in three, with pauses so that they arrive as separate chunks.
    const message = Buffer.from(infoRequest(digest));
    const framed = grpcFrame(message);
    const split = new RawCall(session, INFO, { namespace: NS });
    const cuts = [0, 5, 5 + 10, 5 + 40, framed.length];
    for (let i = 1; i < cuts.length; i++) {
      await split.write(framed.subarray(cuts[i - 1], cuts[i]));
      await pause(20);
    }
    split.end();
    const result = await within(split.result, 5000, 'split Info');
    assertStatus(result, 'OK');
    assert.equal(result.messages.length, 1);
    assert.deepEqual(InfoResponse.decode(result.messages[0]!).info?.digest, digest);

    // Write: STAT and WRITE framed together and sent in one write.
    const data = randomBytes(3000);
    const write = new RawCall(session, WRITE, { namespace: NS });
    await write.write(
      Buffer.concat([
        grpcFrame(writeRequest({ action: WriteAction.STAT, ref: 'two-in-one', total: data.length, expected: sha256(data) })),
        grpcFrame(writeRequest({ action: WriteAction.WRITE, offset: 0, data })),
      ]),
    );
    const stat = WriteContentResponse.decode(await within(write.nextMessage(), 5000, 'STAT response'));
    const written = WriteContentResponse.decode(await within(write.nextMessage(), 5000, 'WRITE response'));
    assert.deepEqual([stat.action, stat.offset, written.action, written.offset], [WriteAction.STAT, 0, WriteAction.WRITE, data.length]);
    await write.write(grpcFrame(writeRequest({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected: sha256(data) })));
    assert.equal(WriteContentResponse.decode(await write.nextMessage()).digest, sha256(data));
    assertStatus(await within(write.result, 5000, 'Write status'), 'OK');
    assert.equal((await info(client, sha256(data), md(NS))).size, data.length);
  });

  test('a message with the compressed flag set: INTERNAL, and the connection keeps serving', async () => {
    const result = await within(rawUnary(session, INFO, [grpcFrame(infoRequest(digest), 1)], { namespace: NS }), 5000, 'compressed Info');
    assertStatus(result, 'INTERNAL', /compress/);
    await stillServing();
  });

  test('a length prefix over max_recv_message_size: RESOURCE_EXHAUSTED before any of the message is sent', async () => {
    // (Whole oversized messages from grpc-js, for every kind of method: hostile.test.ts.)
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE((16 << 20) + 1, 1);
    const call = new RawCall(session, INFO, { namespace: NS });
    await call.write(prefix);
    try {
      assertStatus(await within(call.result, 5000, 'a bare oversized prefix'), 'RESOURCE_EXHAUSTED', /larger than max/);
    } finally {
      call.stream.close(constants.NGHTTP2_CANCEL);
    }
    await stillServing();
  });

  // Like grpc-go's server: once the status is out, a client still sending is told to stop, so a
  // raw client that never half-closes holds no stream (nor a graceful shutdown). Sent before the
  // trailers, the reset would lose the status: the Write tests catch that.
  test('after its status, a call whose client has not half-closed is reset with NO_ERROR', async () => {
    const stream = session.request({ ':method': 'POST', ':path': WRITE, 'content-type': 'application/grpc', te: 'trailers', 'containerd-namespace': NS });
    stream.on('error', () => undefined);
    stream.resume();
    try {
      // No ref: INVALID_ARGUMENT at once (trailers-only), while the client is still sending.
      stream.write(grpcFrame(writeRequest({ action: WriteAction.WRITE, data: Buffer.alloc(10) })));
      const [headers] = (await within(once(stream, 'response'), 5000, 'the status')) as [IncomingHttpHeaders];
      assert.equal(headers['grpc-status'], String(grpcStatus.INVALID_ARGUMENT));
      await within(once(stream, 'close'), 1000, 'RST_STREAM from the server');
      assert.equal(stream.rstCode, constants.NGHTTP2_NO_ERROR);
    } finally {
      stream.close(constants.NGHTTP2_CANCEL);
    }
  });

  test('each connection has a 2 MiB kernel send buffer by default, room for a whole 1 MiB Read answer (as root: past net.core.wmem_max)', async () => {
    await stillServing();
    const buffers = await sendBuffers(server);
    assert.ok(buffers.length >= 2, `the grpc-js client's and the raw session's connections: ${buffers.join(', ')}`);
    assert.deepEqual(new Set(buffers), new Set([2 << 20]));
  });

  test('Read streams reset by the client after their first DATA frame: other and later Reads return every byte', async () => {
    const resets = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        const call = new RawCall(session, READ, { namespace: NS });
        call.stream.end(grpcFrame(ReadContentRequest.encode({ digest, offset: 0, size: 0 }).finish()));
        await within(once(call.stream, 'data'), 5000, 'the first DATA frame');
        call.stream.close(constants.NGHTTP2_CANCEL);
        const result = await within(call.result, 5000, 'the reset stream closing');
        assert.equal(result.grpcStatus, undefined, 'reset before the status');
      }
    };
    // A Read running alongside: response buffers of the reset streams must not end up in its messages.
    const [alongside] = await Promise.all([read(client, digest, 0, 0, md(NS)), resets()]);
    const after = await read(client, digest, 0, 0, md(NS));
    for (const { data } of [alongside, after]) {
      assert.equal(data.length, blob.length);
      assert.ok(data.equals(blob), 'the bytes are the blob’s');
    }
    await stillServing();
  });
});

describe('grpc.socket_send_buffer', () => {
  const sysctl = (name: string): number => Number(readFileSync(`/proc/sys/net/core/${name}`, 'utf8'));
  for (const [what, setting, expected] of [
    ['4 × net.core.wmem_max: that size, as root', () => 4 * sysctl('wmem_max'), () => 4 * sysctl('wmem_max')],
    ['0: the system default', () => 0, () => sysctl('wmem_default')],
  ] as const) {
    test(`${what}`, async () => {
      const server = await startTestServer({ config: `[grpc]\nsocket_send_buffer = ${setting()}\n` });
      const client = contentClient(server.address);
      try {
        await rejectsWith(info(client, sha256(Buffer.from('none')), md(NS)), 'NOT_FOUND');
        assert.deepEqual(await sendBuffers(server), [expected()]);
      } finally {
        client.close();
        await destroySurvivor(server);
      }
    });
  }
});

describe('MessageDecoder', () => {
  /** The bytes of push()'s messages (plain buffers, or { bytes, release } with the pooled decoder). */
  const bytesOf = (messages: ReadonlyArray<Buffer | { bytes: Buffer }>): Buffer[] => messages.map((m) => (Buffer.isBuffer(m) ? m : m.bytes));

  /** Framed messages, and the bytes of all of them. */
  function framed(...messages: Buffer[]): { messages: Buffer[]; bytes: Buffer } {
    return { messages, bytes: Buffer.concat(messages.map((m) => grpcFrame(m))) };
  }

  test('fed one byte at a time: the same messages, empty ones included', () => {
    const { messages, bytes } = framed(randomBytes(300), Buffer.alloc(0), Buffer.from('x'), randomBytes(70_000), Buffer.alloc(0));
    const decoder = new MessageDecoder(1 << 20);
    const ends = new Set<number>();
    messages.reduce((end, m) => (ends.add(end + 5 + m.length), end + 5 + m.length), 0);
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) {
      out.push(...bytesOf(decoder.push(bytes.subarray(i, i + 1))));
      // Not partial exactly at the end of each message, partial everywhere else.
      assert.equal(decoder.partial, !ends.has(i + 1), `after byte ${i}`);
    }
    assert.equal(out.length, messages.length);
    out.forEach((m, i) => assert.ok(m.equals(messages[i]!), `message ${i}`));
    assert.equal(decoder.partial, false);
  });

  test('several messages in one chunk: all of them, still intact once the chunk is overwritten', () => {
    const { messages, bytes } = framed(Buffer.from('first'), Buffer.alloc(0), randomBytes(1000), Buffer.from('last'));
    const decoder = new MessageDecoder(1 << 20);
    const out = bytesOf(decoder.push(bytes));
    // The connection's next socket read reuses the chunk's memory.
    bytes.fill(0xee);
    assert.deepEqual(out, messages);
    assert.equal(decoder.partial, false);
  });

  test('an empty message alone: one empty message', () => {
    const decoder = new MessageDecoder(10);
    assert.deepEqual(bytesOf(decoder.push(grpcFrame(Buffer.alloc(0)))), [Buffer.alloc(0)]);
    assert.equal(decoder.partial, false);
  });

  /** Pushes piece the way the connection does: from one read buffer, overwritten by the next read. */
  const readBuffer = Buffer.alloc(64 << 10);
  function pushRead(decoder: MessageDecoder, piece: Buffer): Buffer[] {
    piece.copy(readBuffer);
    const out = bytesOf(decoder.push(readBuffer.subarray(0, piece.length)));
    readBuffer.fill(0xee);
    return out;
  }

  test('messages across chunk boundaries: the prefix split, a message spanning three chunks', () => {
    const { messages, bytes } = framed(randomBytes(100), randomBytes(50));
    const decoder = new MessageDecoder(1 << 20);
    const out = [bytes.subarray(0, 3), bytes.subarray(3, 40), bytes.subarray(40, 107), bytes.subarray(107)].flatMap((c) => pushRead(decoder, c));
    assert.deepEqual(out, messages);
  });

  test('a message too large to collect in one buffer up front (over 4 MiB), from reads into one buffer', () => {
    const { messages, bytes } = framed(randomBytes((5 << 20) + 123), Buffer.from('after'));
    const decoder = new MessageDecoder(8 << 20);
    const out: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += readBuffer.length) out.push(...pushRead(decoder, bytes.subarray(at, at + readBuffer.length)));
    assert.equal(out.length, 2);
    assert.ok(out[0]!.equals(messages[0]!), 'the large message');
    assert.ok(out[1]!.equals(messages[1]!), 'the one after it');
  });

  test('a prefix over maxLength throws too-large as soon as the prefix is in, before the body', () => {
    const prefix = grpcFrame(Buffer.alloc(0));
    prefix.writeUInt32BE(1001, 1);
    assert.throws(() => new MessageDecoder(1000).push(prefix), (e: unknown) => e instanceof FrameError && e.kind === 'too-large' && /1001 vs\. 1000/.test(e.message));
    // The same with the prefix arriving in pieces, after a message that fits exactly.
    const decoder = new MessageDecoder(1000);
    assert.equal(decoder.push(grpcFrame(Buffer.alloc(1000))).length, 1);
    decoder.push(prefix.subarray(0, 2));
    assert.throws(() => decoder.push(prefix.subarray(2)), (e: unknown) => e instanceof FrameError && e.kind === 'too-large');
  });

  test('the compressed flag throws compressed', () => {
    assert.throws(() => new MessageDecoder(1000).push(grpcFrame(Buffer.from('hi'), 1)), (e: unknown) => e instanceof FrameError && e.kind === 'compressed');
  });

  test('partial: true in the middle of a prefix or a message, false between messages', () => {
    const message = grpcFrame(randomBytes(20));
    const decoder = new MessageDecoder(1000);
    assert.equal(decoder.partial, false);
    decoder.push(message.subarray(0, 3));
    assert.equal(decoder.partial, true, 'inside the prefix');
    decoder.push(message.subarray(3, 5));
    assert.equal(decoder.partial, true, 'prefix complete, no body yet');
    decoder.push(message.subarray(5, 10));
    assert.equal(decoder.partial, true, 'inside the body');
    assert.equal(decoder.push(message.subarray(10)).length, 1);
    assert.equal(decoder.partial, false);
    // A truncated message in a single chunk with a whole one before it.
    assert.equal(decoder.push(Buffer.concat([message, message.subarray(0, 12)])).length, 1);
    assert.equal(decoder.partial, true);
  });
});
