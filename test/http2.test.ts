// contentd's own HTTP/2 server layer (src/rpc/http2). First the HPACK
// decoder on its own: RFC 7541 Appendix C's request and response examples
// (with and without Huffman, eviction in a 256-octet table), malformed blocks,
// and encodeHeaders round trips. Then the connection, against a real
// `contentd serve` over its unix socket with a raw client (support/h2-wire.ts)
// that shows every frame: the SETTINGS exchange, PING, unknown frames,
// CONTINUATION, padding, connection errors (GOAWAY with the RFC 9113 code),
// flow control both ways (the server never oversends a window; request data
// gets window back; an overrun is a FLOW_CONTROL_ERROR), RST_STREAM(NO_ERROR)
// after the trailers of a call whose client still sends, many concurrent
// calls on one connection, response header blocks larger than a frame, and
// graceful shutdown (GOAWAY, the call in flight finishes, the socket ends).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as http2Connect, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  ContentService,
  InfoRequest,
  InfoResponse,
  ReadContentRequest,
  ReadContentResponse,
  WriteAction,
  WriteContentRequest,
  WriteContentResponse,
  type ContentClient,
} from '../generated/containerd/services/content/v1/content';
import { HeaderDecoder, HeaderEncoder, HpackError, type HeaderField, type HeaderMap } from '../src/rpc/http2/hpack';
import { contentClient, info, md, rejectsWith, sha256, writeBlob } from './support/client';
import {
  chunks,
  DEFAULT_WINDOW,
  describeFrame,
  encodeFrame,
  ErrorCode,
  errorName,
  Flags,
  FrameType,
  grpcMessages,
  H2Client,
  header,
  literalHeaders,
  pause,
  pingFrame,
  requestHeaders,
  ResponseHeaderDecoder,
  rstStreamFrame,
  Setting,
  settingsFrame,
  settingsOf,
  splitFrames,
  windowUpdateFrame,
  within,
  type Frame,
  type StreamResult,
} from './support/h2-wire';
import { connectRaw, grpcFrame, RawCall } from './support/raw-grpc';
import { openFds, settle } from './support/proc';
import { destroySurvivor, startTestServer, type TestServer } from './support/server';
import { socketWrites, Strace, straceSkip } from './support/strace';

const NS = 'h2';
const INFO = ContentService.info.path;
const READ = ContentService.read.path;
const WRITE = ContentService.write.path;
const MiB = 1 << 20;

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const infoRequest = (digest: string): Uint8Array => InfoRequest.encode({ digest }).finish();
const writeRequest = (req: Partial<WriteContentRequest>): Uint8Array =>
  WriteContentRequest.encode({ action: WriteAction.STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...req }).finish();

/** grpc-status of a finished stream (trailers, or a trailers-only response), by name. */
function statusOf(result: StreamResult): string {
  const value = header(result.trailers, 'grpc-status') ?? header(result.headers, 'grpc-status');
  if (value === undefined) return `none (reset: ${result.reset === undefined ? 'no' : errorName(result.reset)})`;
  return grpcStatus[Number(value)] ?? value;
}

/** A unary Info answered OK with the blob's size: the connection still serves calls. */
function assertInfo(result: StreamResult, digest: string, size: number): void {
  assert.equal(header(result.headers, ':status'), '200');
  assert.equal(statusOf(result), 'OK', `grpc-message: ${header(result.trailers, 'grpc-message') ?? header(result.headers, 'grpc-message')}`);
  const messages = grpcMessages(result.body);
  assert.equal(messages.length, 1);
  const got = InfoResponse.decode(messages[0]!).info;
  assert.equal(got?.digest, digest);
  assert.equal(got?.size, size);
}

/** A stream's frames in one word each: "HEADERS", "DATA", "HEADERS+END_STREAM", "RST_STREAM:NO_ERROR". */
function kinds(frames: Frame[]): string[] {
  const names: Record<number, string> = { [FrameType.HEADERS]: 'HEADERS', [FrameType.DATA]: 'DATA', [FrameType.CONTINUATION]: 'CONTINUATION', [FrameType.RST_STREAM]: 'RST_STREAM' };
  return frames.map((f) => {
    const name = names[f.type] ?? `type ${f.type}`;
    if (f.type === FrameType.RST_STREAM) return `${name}:${errorName(f.payload.readUInt32BE(0))}`;
    return f.flags & Flags.END_STREAM ? `${name}+END_STREAM` : name;
  });
}

/** The error code of a RST_STREAM or GOAWAY frame. */
function codeOf(frame: Frame): number {
  return frame.type === FrameType.GOAWAY ? frame.payload.readUInt32BE(4) : frame.payload.readUInt32BE(0);
}

/** The connection error the server must report: GOAWAY with code (and last stream id), then the socket ends. */
async function assertGoAway(client: H2Client, code: number, lastStreamId: number, what: string): Promise<void> {
  const goAway = await client.goAway(3000, `GOAWAY for ${what}`);
  assert.equal(errorName(goAway.code), errorName(code), `GOAWAY code for ${what} (debug: ${goAway.debug})`);
  assert.equal(goAway.lastStreamId, lastStreamId, `GOAWAY last-stream-id for ${what}`);
  await client.waitEnded(3000, `the socket ending after the GOAWAY for ${what}`);
}

describe('HPACK decoder (RFC 7541)', () => {
  const fields = (map: HeaderMap): [string, string][] => Object.entries(map).flatMap(([name, v]) => (Array.isArray(v) ? v.map((x): [string, string] => [name, x]) : [[name, v]]));
  const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
  const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
  const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';

  const requests: [string, string][][] = [
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
    [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
  ];
  const responses: [string, string][][] = [
    [[':status', '302'], ['cache-control', 'private'], ['date', DATE_21], ['location', 'https://www.example.com']],
    [[':status', '307'], ['cache-control', 'private'], ['date', DATE_21], ['location', 'https://www.example.com']],
    [[':status', '200'], ['cache-control', 'private'], ['date', DATE_22], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]],
  ];

  /** Decodes the blocks in order on one decoder (they share its dynamic table) and checks each result. */
  function decodeAll(decoder: HeaderDecoder, blocks: string[], expected: [string, string][][]): void {
    blocks.forEach((block, i) => assert.deepEqual(fields(decoder.decode(hex(block))), expected[i], `block ${i + 1}`));
  }

  test('C.3: three requests without Huffman, the later ones indexing the table the earlier ones filled', () => {
    const decoder = new HeaderDecoder();
    decodeAll(
      decoder,
      ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'],
      requests,
    );
    // The table now holds, newest first: custom-key, cache-control, :authority (indexes 62 to 64), nothing at 65.
    assert.deepEqual(fields(decoder.decode(hex('be bf c0'))), [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']]);
    assert.throws(() => decoder.decode(hex('c1')), HpackError);
  });

  test('C.4: the same requests with Huffman-coded strings', () => {
    decodeAll(
      new HeaderDecoder(),
      ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'],
      requests,
    );
  });

  // With a 256-octet table each response evicts the oldest entries: C.5.2 refers to entries that
  // survived (c1 c0 bf), C.5.3's references only make sense after :status 302 was evicted.
  const evictionChecks = (decoder: HeaderDecoder): void => {
    // Left in the table: set-cookie (62), content-encoding (63), date :22 (64); the rest was evicted.
    assert.deepEqual(fields(decoder.decode(hex('be bf c0'))), [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE_22]]);
    assert.throws(() => decoder.decode(hex('c1')), HpackError, 'entry 65 was evicted');
  };

  test('C.5: three responses without Huffman in a 256-octet table, evicting as they go', () => {
    const decoder = new HeaderDecoder(256);
    decodeAll(
      decoder,
      [
        '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        '4803 3330 37c1 c0bf',
        '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
      ],
      responses,
    );
    evictionChecks(decoder);
  });

  test('C.6: the same responses with Huffman, in a 256-octet table', () => {
    const decoder = new HeaderDecoder(256);
    decodeAll(
      decoder,
      [
        '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
        '4883 640e ffc1 c0bf',
        '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
      ],
      responses,
    );
    evictionChecks(decoder);
  });

  test('an index beyond the static and dynamic tables, or index 0, throws HpackError', () => {
    assert.throws(() => new HeaderDecoder().decode(hex('be')), HpackError, 'index 62, empty dynamic table');
    assert.throws(() => new HeaderDecoder().decode(hex('ff 49')), HpackError, 'index 200 (a multi-byte integer)');
    assert.throws(() => new HeaderDecoder().decode(hex('80')), HpackError, 'index 0');
    // A literal whose name refers to a missing entry: the same.
    assert.throws(() => new HeaderDecoder().decode(hex('0f 2f 01 78')), HpackError, 'literal with name index 62');
  });

  test('invalid Huffman: zero padding, padding of 8 bits or more, EOS inside the string', () => {
    // A literal field "x" whose value is Huffman-coded, with the given bytes.
    const block = (bytes: string): Buffer => Buffer.concat([hex('00 01 78'), Buffer.from([0x80 | hex(bytes).length]), hex(bytes)]);
    // 'a' is the 5-bit code 00011: padded with ones it is valid...
    assert.deepEqual(fields(new HeaderDecoder().decode(block('1f'))), [['x', 'a']]);
    // ...with zeros, or with 11 ones (more than 7 bits), it is not.
    assert.throws(() => new HeaderDecoder().decode(block('18')), HpackError, 'zero padding');
    assert.throws(() => new HeaderDecoder().decode(block('1f ff')), HpackError, 'padding longer than 7 bits');
    // EOS (30 ones) may not appear in a string.
    assert.throws(() => new HeaderDecoder().decode(block('ff ff ff ff')), HpackError, 'EOS');
  });

  test('a dynamic table size update above the advertised maximum, or after a field, throws', () => {
    // 001xxxxx with a 5-bit prefix: 4096 = 31 + 4065 → 3f e1 1f; 256 → 3f e1 01.
    assert.throws(() => new HeaderDecoder(256).decode(hex('3f e1 1f')), HpackError, '4096 above 256');
    assert.deepEqual(fields(new HeaderDecoder(256).decode(hex('3f e1 01 82'))), [[':method', 'GET']], 'an update to exactly the maximum is fine');
    assert.throws(() => new HeaderDecoder().decode(hex('82 20')), HpackError, 'an update after a field');
    // An update to 0 empties the table: an entry added before is gone.
    const decoder = new HeaderDecoder();
    decoder.decode(hex('4001 6101 62')); // a: b, indexed
    assert.deepEqual(fields(decoder.decode(hex('be'))), [['a', 'b']]);
    assert.throws(() => decoder.decode(hex('20 be')), HpackError, 'evicted by a size update to 0');
  });

  test('HeaderEncoder: decodes back to the same fields, long names and values (multi-byte integers) included; fields not marked repeated never touch the table', () => {
    const longValue = 'v'.repeat(300);
    const longName = `x-${'n'.repeat(140)}`;
    const input: [string, string][] = [
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['grpc-status', '13'],
      ['grpc-message', longValue],
      [longName, 'short'],
      ['date', ''],
    ];
    const decoder = new HeaderDecoder();
    const block = new HeaderEncoder().encode(input);
    assert.deepEqual(fields(decoder.decode(block)), input);
    // Literals without indexing: nothing was added to the dynamic table.
    assert.throws(() => decoder.decode(hex('be')), HpackError);
    // The long value's length went out as a multi-byte integer (0x7f, then 300 - 127 = 173 → ad 01).
    assert.ok(block.includes(hex('7f ad 01')), 'length 300 encoded as 7f ad 01');
    // The raw client's HPACK agrees with it both ways (the raw tests rely on that): it reads what the encoder
    // writes, and what it writes decodes here.
    assert.deepEqual(new ResponseHeaderDecoder().decode(block), input);
    assert.deepEqual(fields(new HeaderDecoder().decode(literalHeaders(input))), input);
  });

  test('HeaderEncoder: repeated fields go into the table once, then are one-byte indexes; other fields stay literals', () => {
    const status: HeaderField = [':status', '200'];
    const type: HeaderField = ['content-type', 'application/grpc'];
    const ok: HeaderField = ['grpc-status', '0'];
    const encoder = new HeaderEncoder(new Set([status, type, ok]));
    const decoder = new HeaderDecoder();
    const raw = new ResponseHeaderDecoder();
    const blocks = [[status, type], [ok], [status, type], [ok], [status, type, ['grpc-message', 'x'] as const], [ok]].map((f) => encoder.encode(f));
    for (const block of blocks) assert.deepEqual(raw.decode(block), fields(decoder.decode(block)));
    // :status 200 is the static table's entry 8; content-type went in first (63 once grpc-status is in at 62).
    assert.deepEqual([...blocks[2]!], [0x88, 0xbf]);
    assert.deepEqual([...blocks[3]!], [0xbe]);
    assert.equal(blocks[0]![1], 0x40 | 31, 'content-type: a literal with incremental indexing, its name static entry 31');
    assert.deepEqual(raw.table, [['grpc-status', '0'], ['content-type', 'application/grpc']], 'grpc-message was not indexed');
  });

  test('HeaderEncoder: a lowered SETTINGS_HEADER_TABLE_SIZE is signalled at the start of the next block, and indexing stops when nothing fits', () => {
    const type: HeaderField = ['content-type', 'application/grpc'];
    const encoder = new HeaderEncoder(new Set([type]));
    encoder.encode([type]);
    encoder.setPeerTableSize(0);
    const zero = encoder.encode([type]);
    assert.deepEqual([...zero.subarray(0, 2)], [0x20, 0x0f], 'a size update to 0, then content-type as a plain literal');
    // A decoder whose limit is 0 (the SETTINGS it sent) accepts every block from here on.
    const decoder = new HeaderDecoder(0);
    assert.deepEqual(fields(decoder.decode(zero)), [type]);
    assert.deepEqual(fields(decoder.decode(encoder.encode([type]))), [type]);
    // Raised again: signalled, and the field is indexed anew.
    encoder.setPeerTableSize(4096);
    const raised = encoder.encode([type]);
    assert.equal(raised[0], 0x3f, 'a size update to 4096 (0x3f e1 1f)');
    const again = new HeaderDecoder();
    assert.deepEqual(fields(again.decode(raised)), [type]);
    assert.deepEqual([...encoder.encode([type])], [0xbe]);
  });
});

describe('HTTP/2 connection: raw frames against contentd serve', () => {
  let server: TestServer;
  let client: ContentClient;
  const blob = randomBytes(MiB);
  const digest = sha256(blob);
  const clients: H2Client[] = [];

  /** A raw connection, closed after the suite. */
  async function connect(settings: ReadonlyArray<readonly [number, number]> = []): Promise<H2Client> {
    const c = await H2Client.connect(server.address, { settings });
    clients.push(c);
    return c;
  }

  before(async () => {
    server = await startTestServer();
    client = contentClient(server.address);
    await within(writeBlob(client, 'blob', blob, { metadata: md(NS) }), 15_000, 'writing the test blob');
  });
  after(async () => {
    for (const c of clients) c.close();
    client?.close();
    if (server) await destroySurvivor(server);
  });

  /** A fresh connection still gets a unary call answered. */
  async function stillServing(): Promise<void> {
    const c = await connect();
    assertInfo(await c.unary(INFO, infoRequest(digest), NS), digest, blob.length);
  }

  describe('connection set-up, PING, frames the server must accept', () => {
    test('the server speaks first with SETTINGS (INITIAL_WINDOW_SIZE 2 MiB) and a connection WINDOW_UPDATE, and ACKs each client SETTINGS', async () => {
      const c = await connect([[Setting.INITIAL_WINDOW_SIZE, 100_000]]);
      await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) !== 0, 3000, 'SETTINGS ACK');
      const first = c.frames[0]!;
      assert.equal(first.type, FrameType.SETTINGS, `first frame: ${c.summary()}`);
      assert.equal(first.flags & Flags.ACK, 0, 'the server’s own SETTINGS, not an ACK');
      assert.equal(first.stream, 0);
      assert.equal(settingsOf(first).get(Setting.INITIAL_WINDOW_SIZE), 0x200000);
      const update = await c.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.stream === 0, 3000, 'connection WINDOW_UPDATE');
      const increment = update.payload.readUInt32BE(0);
      // The connection window must hold at least one stream's whole window, or a 1 MiB Write stalls on it.
      assert.ok(DEFAULT_WINDOW + increment >= 0x200000, `connection window ${DEFAULT_WINDOW + increment}`);
      const ack = c.frames.find((f) => f.type === FrameType.SETTINGS && f.flags & Flags.ACK)!;
      assert.equal(ack.payload.length, 0, 'a SETTINGS ACK has no payload');

      // A second SETTINGS gets its own ACK.
      const acks = (): number => c.frames.filter((f) => f.type === FrameType.SETTINGS && f.flags & Flags.ACK).length;
      c.write(settingsFrame([[Setting.MAX_FRAME_SIZE, 32_768]]));
      await c.waitUntil(() => acks() === 2, 3000, 'the second SETTINGS ACK');
    });

    test('PING is answered with PING ACK carrying the same 8 bytes; a PING ACK is not answered', async () => {
      const c = await connect();
      const data = randomBytes(8);
      c.write(encodeFrame(FrameType.PING, Flags.ACK, 0, randomBytes(8)));
      c.write(encodeFrame(FrameType.PING, 0, 0, data));
      const ack = await c.waitFor((f) => f.type === FrameType.PING, 3000, 'PING ACK');
      assert.equal(ack.flags & Flags.ACK, Flags.ACK);
      assert.ok(ack.payload.equals(data), 'the same opaque data');
      await c.ping();
      assert.equal(c.frames.filter((f) => f.type === FrameType.PING).length, 2, `only our two PINGs were answered: ${c.summary()}`);
    });

    test('frames of unknown types are ignored, on stream 0, on an idle stream and in the middle of a call', async () => {
      const c = await connect();
      c.write(encodeFrame(0xfa, 0xff, 0, randomBytes(30)), encodeFrame(0x20, 0, 99, randomBytes(5)));
      const stream = c.openStream(INFO, NS);
      c.write(encodeFrame(0x0b, 0x01, stream, randomBytes(12)));
      await c.sendMessage(stream, infoRequest(digest), true);
      assertInfo(await c.response(stream, 5000), digest, blob.length);
      assert.equal(c.frames.find((f) => f.type === FrameType.GOAWAY), undefined, c.summary());
    });

    test('a header block split over HEADERS and CONTINUATION frames (a 40 KB metadata value among them), each its own socket read, makes a working call', async () => {
      const c = await connect();
      const block = requestHeaders(INFO, NS, [['x-padding', 'p'.repeat(40_000)]]);
      // Cut in the middle of the :path string first, then in 16 KiB frames.
      const parts = [block.subarray(0, 20), ...chunks(block.subarray(20))];
      assert.ok(parts.length >= 4);
      const stream = c.newStream();
      // Apart in time, so that each frame overwrites the server's read buffer: the block's earlier parts must have been kept.
      c.write(encodeFrame(FrameType.HEADERS, 0, stream, parts[0]));
      for (const [i, p] of parts.slice(1).entries()) {
        await pause(20);
        c.write(encodeFrame(FrameType.CONTINUATION, i === parts.length - 2 ? Flags.END_HEADERS : 0, stream, p));
      }
      await c.sendMessage(stream, infoRequest(digest), true);
      assertInfo(await c.response(stream, 5000), digest, blob.length);

      // END_STREAM on the HEADERS frame takes effect once the CONTINUATION ends the block: a unary call
      // without a message gets its status at once (instead of waiting for a body that never comes).
      const empty = c.newStream();
      const small = requestHeaders(INFO, NS);
      c.write(encodeFrame(FrameType.HEADERS, Flags.END_STREAM, empty, small.subarray(0, 10)), encodeFrame(FrameType.CONTINUATION, Flags.END_HEADERS, empty, small.subarray(10)));
      assert.equal(statusOf(await c.response(empty, 5000)), 'UNIMPLEMENTED');
    });

    test('another frame in the middle of a header block is a PROTOCOL_ERROR', async () => {
      // RFC 9113 §6.10: a header block's frames must be contiguous.
      const c = await connect();
      const block = requestHeaders(INFO, NS);
      c.write(encodeFrame(FrameType.HEADERS, 0, 1, block.subarray(0, 10)), encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8)));
      await assertGoAway(c, ErrorCode.PROTOCOL_ERROR, 0, 'a PING inside a header block');
    });

    test('PADDED (and PRIORITY) HEADERS and PADDED DATA: padding and priority fields are skipped, the call works', async () => {
      const c = await connect();
      const stream = c.newStream();
      const block = requestHeaders(INFO, NS);
      const headerPad = 17;
      // Pad Length, then E + stream dependency and weight, then the block, then the padding (RFC 9113 §6.2).
      const headersPayload = Buffer.concat([Buffer.from([headerPad]), hex('00000000 0f'), block, Buffer.alloc(headerPad, 0)]);
      c.write(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS | Flags.PADDED | Flags.PRIORITY, stream, headersPayload));
      const message = grpcFrame(infoRequest(digest));
      const dataPad = 200;
      c.write(encodeFrame(FrameType.DATA, Flags.PADDED | Flags.END_STREAM, stream, Buffer.concat([Buffer.from([dataPad]), message, Buffer.alloc(dataPad, 0)])));
      assertInfo(await c.response(stream, 5000), digest, blob.length);
    });

    test('padding as long as the frame is a PROTOCOL_ERROR', async () => {
      const c = await connect();
      const stream = c.openStream(INFO, NS);
      // Pad Length 4 in a 4-byte payload: the pad-length octet itself leaves room for only 3 (RFC 9113 §6.1).
      c.write(encodeFrame(FrameType.DATA, Flags.PADDED, stream, Buffer.from([4, 1, 2, 3])));
      await assertGoAway(c, ErrorCode.PROTOCOL_ERROR, stream, 'a pad length of 4 in a 4-byte DATA payload');
    });
  });

  describe('connection errors', () => {
    test('a bad preface (an HTTP/1.1 request) gets the socket closed, and the server keeps serving', async () => {
      const c = await H2Client.connect(server.address, { preface: false });
      clients.push(c);
      c.write(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 'latin1'));
      await c.waitClosed(3000, 'the socket closing after an HTTP/1.1 request');
      // Nothing but the server's opening frames: no HTTP/1 answer, no stream.
      assert.ok(c.frames.every((f) => f.stream === 0 && (f.type === FrameType.SETTINGS || f.type === FrameType.WINDOW_UPDATE)), c.summary());
      await stillServing();
    });

    test('clients that half-close their socket after a call get it closed, and the server holds none of their descriptors', async () => {
      const pid = server.process.pid!;
      const fds = openFds(pid);
      for (let i = 0; i < 20; i++) {
        const c = await connect();
        assertInfo(await c.unary(INFO, infoRequest(digest), NS), digest, blob.length);
        c.socket.end();
        await c.waitClosed(3000, `connection ${i} closing after the client's end of the socket`);
      }
      const after = await settle(() => openFds(pid), (n) => n <= fds);
      assert.ok(after <= fds, `open files back to ${fds} (now ${after})`);
    });

    test('DATA on stream 0: GOAWAY PROTOCOL_ERROR, and the socket ends', async () => {
      const c = await connect();
      c.write(encodeFrame(FrameType.DATA, 0, 0, Buffer.from('hello')));
      await assertGoAway(c, ErrorCode.PROTOCOL_ERROR, 0, 'DATA on stream 0');
      await stillServing();
    });

    test('a frame of exactly 16384 bytes is accepted; one of 16385 is a FRAME_SIZE_ERROR', async () => {
      // An Info request whose framed message fills a DATA frame exactly (an invalid digest: any status will do).
      let length = 16_384 - 20;
      while (grpcFrame(infoRequest('x'.repeat(length))).length < 16_384) length++;
      const exact = grpcFrame(infoRequest('x'.repeat(length)));
      assert.equal(exact.length, 16_384);
      const ok = await connect();
      const stream = ok.openStream(INFO, NS);
      ok.write(encodeFrame(FrameType.DATA, Flags.END_STREAM, stream, exact));
      assert.equal(statusOf(await ok.response(stream, 5000)), 'INVALID_ARGUMENT');

      const c = await connect();
      const over = c.openStream(INFO, NS);
      c.write(encodeFrame(FrameType.DATA, Flags.END_STREAM, over, Buffer.concat([exact, Buffer.alloc(1)])));
      await assertGoAway(c, ErrorCode.FRAME_SIZE_ERROR, over, 'a 16385-byte DATA frame');
    });

    test('garbage HPACK (indexed field 0; index 200 on an empty table): GOAWAY COMPRESSION_ERROR', async () => {
      for (const [block, what] of [
        [hex('80'), 'index 0'],
        [hex('ff 49'), 'index 200'],
      ] as const) {
        const c = await connect();
        c.write(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 1, block));
        await assertGoAway(c, ErrorCode.COMPRESSION_ERROR, 0, what);
      }
      await stillServing();
    });

    test('a request on an even (server-initiated) stream id: GOAWAY PROTOCOL_ERROR', async () => {
      const c = await connect();
      c.openStream(INFO, NS, { stream: 2, endStream: true });
      await assertGoAway(c, ErrorCode.PROTOCOL_ERROR, 0, 'HEADERS on stream 2');
    });

    test(
      'a new stream with an id lower than one already opened: GOAWAY PROTOCOL_ERROR',
      async () => {
        const c = await connect();
        assertInfo(await within(c.unary(INFO, infoRequest(digest), NS), 5000, 'Info on stream 1'), digest, blob.length);
        const five = c.openStream(INFO, NS, { stream: 5 });
        await c.sendMessage(five, infoRequest(digest), true);
        assertInfo(await c.response(five, 5000), digest, blob.length);
        // Stream 3 was never opened, and opening 5 closed it (RFC 9113 §5.1.1): it cannot be opened now.
        c.openStream(INFO, NS, { stream: 3 });
        await c.sendMessage(3, infoRequest(digest), true);
        const goAway = await c.goAway(1000, 'GOAWAY for HEADERS on stream 3 after stream 5');
        assert.equal(errorName(goAway.code), 'PROTOCOL_ERROR');
        assert.equal(goAway.lastStreamId, 5);
      },
    );
  });

  test('DATA frames that arrive a few hundred bytes per socket read (a padded one among them, END_STREAM on the last) make the same Write: every byte staged, in order, and the half-close seen', async () => {
    const data = randomBytes(50_000);
    // A WRITE, not a COMMIT: the server ends the call only once it sees END_STREAM.
    const message = grpcFrame(writeRequest({ action: WriteAction.WRITE, ref: 'h2-dribble', total: data.length, expected: sha256(data), data }));
    const c = await connect();
    const stream = c.openStream(WRITE, NS);
    const parts = chunks(message);
    const frames = parts.map((part, i) => {
      const last = i === parts.length - 1 ? Flags.END_STREAM : 0;
      if (i !== 1) return encodeFrame(FrameType.DATA, last, stream, part);
      // Padding must be collected whole before the data can be told from it.
      return encodeFrame(FrameType.DATA, last | Flags.PADDED, stream, Buffer.concat([Buffer.from([7]), part.subarray(0, 16_000), Buffer.alloc(7)]));
    });
    if (parts[1]) frames.splice(2, 0, encodeFrame(FrameType.DATA, 0, stream, parts[1].subarray(16_000)));
    const wire = Buffer.concat(frames);
    for (let at = 0; at < wire.length; at += 700) {
      c.write(wire.subarray(at, at + 700));
      // Each piece its own socket read on the server.
      await pause(1);
    }
    const result = await c.response(stream, 10_000);
    assert.equal(statusOf(result), 'OK');
    const written = WriteContentResponse.decode(grpcMessages(result.body)[0]!);
    assert.equal(written.offset, data.length);
    assert.equal(written.digest, sha256(data));
  });

  describe('flow control', () => {
    test('Read to a client with a 1000-byte stream window: the server never sends beyond the windows, and every byte arrives once granted', async () => {
      const c = await connect([[Setting.INITIAL_WINDOW_SIZE, 1000]]);
      await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) !== 0, 3000, 'SETTINGS ACK');
      const stream = c.openStream(READ, NS);
      // What this client has granted, and what the server has sent against it (DATA payloads, padding included).
      let streamGranted = 1000;
      let connGranted = DEFAULT_WINDOW;
      let streamGot = 0;
      let connGot = 0;
      let autoGrant = false;
      const violations: string[] = [];
      c.onFrame = (f: Frame) => {
        if (f.type !== FrameType.DATA) return;
        connGot += f.payload.length;
        if (f.stream === stream) streamGot += f.payload.length;
        if (streamGot > streamGranted) violations.push(`stream: ${streamGot} bytes sent, ${streamGranted} granted`);
        if (connGot > connGranted) violations.push(`connection: ${connGot} bytes sent, ${connGranted} granted`);
        if (autoGrant) {
          // As a client reading steadily would: top the windows up once half is used.
          if (connGranted - connGot < 32_768) {
            c.write(windowUpdateFrame(0, 65_535));
            connGranted += 65_535;
          }
          if (streamGranted - streamGot < 32_768) {
            c.write(windowUpdateFrame(stream, 65_535));
            streamGranted += 65_535;
          }
        }
      };
      /** The server stops at exactly the window: it sent all of it, and nothing more comes. */
      const stallsAt = async (got: () => number, limit: number, what: string): Promise<void> => {
        await c.waitUntil(() => got() >= limit, 5000, `${what}: ${limit} bytes`);
        await pause(150);
        assert.equal(got(), limit, `${what}: stopped at the window`);
      };
      await c.sendMessage(stream, ReadContentRequest.encode({ digest, offset: 0, size: 0 }).finish(), true);
      await stallsAt(() => streamGot, 1000, 'the initial 1000-byte stream window');

      // A larger SETTINGS_INITIAL_WINDOW_SIZE widens open streams by the difference (RFC 9113 §6.9.2).
      c.write(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 3000]]));
      streamGranted += 2000;
      await stallsAt(() => streamGot, 3000, 'the window raised by SETTINGS to 3000');

      // A stream WINDOW_UPDATE beyond the connection window: now the connection's 65535 bytes are the limit.
      c.write(windowUpdateFrame(stream, 200_000));
      streamGranted += 200_000;
      await stallsAt(() => connGot, DEFAULT_WINDOW, 'the connection window');

      autoGrant = true;
      c.write(windowUpdateFrame(0, 65_535));
      connGranted += 65_535;
      const result = await c.response(stream, 15_000, 'the rest of the Read');
      assert.deepEqual(violations, [], 'the server sent more than it was granted');
      assert.equal(statusOf(result), 'OK');
      const data = Buffer.concat(grpcMessages(result.body).map((m) => ReadContentResponse.decode(m).data));
      assert.equal(data.length, blob.length);
      assert.ok(data.equals(blob), 'the bytes are the blob’s');
      // Response headers, DATA only, then the status trailers ending the stream (the client had half-closed: no reset).
      const sequence = kinds(result.frames);
      assert.equal(sequence[0], 'HEADERS');
      assert.equal(sequence.at(-1), 'HEADERS+END_STREAM');
      assert.deepEqual(new Set(sequence.slice(1, -1)), new Set(['DATA']));
    });

    test('a 20 MiB Write through node:http2 completes: the server keeps giving the stream and the connection window back', async () => {
      // 20 MiB is past both the 2 MiB stream window and the 16 MiB connection window.
      const session = connectRaw(server.address);
      try {
        const data = randomBytes(20 * MiB);
        const expected = sha256(data);
        const call = new RawCall(session, WRITE, { namespace: NS });
        const upload = async (): Promise<WriteContentResponse> => {
          await call.write(grpcFrame(writeRequest({ action: WriteAction.STAT, ref: 'h2-big', total: data.length, expected })));
          for (let offset = 0; offset < data.length; offset += MiB) {
            await call.write(grpcFrame(writeRequest({ action: WriteAction.WRITE, offset, data: data.subarray(offset, offset + MiB) })));
          }
          await call.write(grpcFrame(writeRequest({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected })));
          call.end();
          const result = await call.result;
          assert.equal(result.grpcStatus, grpcStatus.OK, result.message);
          return WriteContentResponse.decode(result.messages.at(-1)!);
        };
        const committed = await within(upload(), 20_000, 'the 20 MiB Write (stalled on flow control?)');
        assert.equal(committed.digest, expected);
        assert.equal((await within(info(client, expected, md(NS)), 5000, 'Info of the written blob')).size, data.length);
      } finally {
        session.destroy();
      }
    });

    /** A Write stream whose handler is stuck: the client's stream window is 0, so the STAT response cannot go out, and request data piles up in the server. */
    async function stuckWrite(c: H2Client, ref: string, bytes: number): Promise<number> {
      const stream = c.openStream(WRITE, NS);
      // Small messages, so that the few the server takes before it stops reading give back too little for a WINDOW_UPDATE.
      const parts = [grpcFrame(writeRequest({ action: WriteAction.STAT, ref }))];
      let length = parts[0]!.length;
      for (let offset = 0; length < bytes; offset += 16_000) {
        const part = grpcFrame(writeRequest({ action: WriteAction.WRITE, offset, data: randomBytes(16_000) }));
        parts.push(part);
        length += part.length;
      }
      await c.sendData(stream, Buffer.concat(parts).subarray(0, bytes));
      return stream;
    }

    test('DATA beyond the 2 MiB stream window, sent without waiting: that stream is reset with FLOW_CONTROL_ERROR (or the connection closed with it)', async () => {
      const c = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      assert.equal(c.streamWindow(1), 0x200000);
      // Exactly the window: accepted (no reset, no GOAWAY).
      const stream = await stuckWrite(c, 'h2-overrun', 0x200000);
      await c.ping();
      // Whatever the server granted meanwhile is used up too, so that the next byte is over.
      for (let i = 0; i < 10 && c.streamWindow(stream) > 0; i++) {
        await c.sendData(stream, Buffer.alloc(c.streamWindow(stream)));
        await c.ping();
      }
      assert.equal(c.streamWindow(stream), 0, 'the stream window is used up');
      const before = c.frames.filter((f) => f.stream === stream && f.type === FrameType.RST_STREAM);
      assert.deepEqual(before, [], `no reset while within the window: ${c.summary()}`);

      await c.sendData(stream, Buffer.alloc(1), { respectWindow: false });
      const verdict = await c.waitFor(
        (f) => (f.type === FrameType.RST_STREAM && f.stream === stream) || f.type === FrameType.GOAWAY,
        3000,
        'RST_STREAM or GOAWAY for one byte over the window',
      );
      // RFC 9113 §6.9.1: a stream error or a connection error of type FLOW_CONTROL_ERROR; the code resets the stream.
      assert.equal(errorName(codeOf(verdict)), 'FLOW_CONTROL_ERROR', `${verdict.type === FrameType.GOAWAY ? 'GOAWAY' : 'RST_STREAM'} code`);
      if (verdict.type === FrameType.RST_STREAM) {
        // A stream error: the connection goes on (with a window for responses now).
        c.write(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW]]));
        assertInfo(await c.unary(INFO, infoRequest(digest), NS), digest, blob.length);
      }
    });

    test(
      'request data the server was holding for a stream that is then reset still gets its connection window back',
      async () => {
        const c = await connect([[Setting.INITIAL_WINDOW_SIZE, 0]]);
        await c.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.stream === 0, 3000, 'the server’s connection WINDOW_UPDATE');
        const full = c.connectionSendWindow;
        // Nine uploads of 1.5 MiB whose handler cannot proceed, each cancelled by the client.
        for (let i = 0; i < 9; i++) {
          const stream = await stuckWrite(c, `h2-held-${i}`, 1.5 * MiB);
          await c.ping();
          c.write(rstStreamFrame(stream, ErrorCode.CANCEL));
        }
        await c.ping();
        // The server returns window in batches of a quarter of the 16 MiB: at most 4 MiB may still be out.
        const outstanding = full - c.connectionSendWindow;
        assert.ok(outstanding < 8 * MiB, `${(outstanding / MiB).toFixed(1)} MiB of the ${(full / MiB).toFixed(0)} MiB connection window never came back after 13.5 MiB sent on cancelled streams`);
      },
    );
  });

  describe('stream ends', () => {
    test('a call that ends while its client still sends: trailers-only HEADERS with END_STREAM, then RST_STREAM(NO_ERROR)', async () => {
      const c = await connect();
      const stream = c.openStream(WRITE, NS);
      // No ref: INVALID_ARGUMENT at once, while the request side is still open.
      await c.sendMessage(stream, writeRequest({ action: WriteAction.WRITE, data: Buffer.alloc(10) }));
      const result = await c.response(stream, 5000);
      await c.waitFor((f) => f.stream === stream && f.type === FrameType.RST_STREAM, 3000, 'RST_STREAM after the status');
      assert.deepEqual(kinds(c.streamResult(stream).frames), ['HEADERS+END_STREAM', 'RST_STREAM:NO_ERROR']);
      assert.equal(statusOf(result), 'INVALID_ARGUMENT');
    });

    test('the same after response messages: HEADERS, DATA, trailers with END_STREAM, then RST_STREAM(NO_ERROR)', async () => {
      const c = await connect();
      const stream = c.openStream(WRITE, NS);
      await c.sendMessage(stream, writeRequest({ action: WriteAction.STAT, ref: 'h2-rst' }));
      await c.waitFor((f) => f.stream === stream && f.type === FrameType.DATA, 5000, 'the STAT response');
      // An unknown action: INVALID_ARGUMENT in trailers.
      await c.sendMessage(stream, writeRequest({ action: 99 as WriteAction }));
      await c.waitFor((f) => f.stream === stream && f.type === FrameType.RST_STREAM, 5000, 'RST_STREAM after the trailers');
      assert.deepEqual(kinds(c.streamResult(stream).frames), ['HEADERS', 'DATA', 'HEADERS+END_STREAM', 'RST_STREAM:NO_ERROR']);
      assert.equal(statusOf(c.streamResult(stream)), 'INVALID_ARGUMENT');
    });

    test('a call whose client half-closed ends with its trailers alone: no RST_STREAM', async () => {
      const c = await connect();
      const result = await c.unary(INFO, infoRequest(digest), NS);
      assertInfo(result, digest, blob.length);
      await c.ping();
      assert.deepEqual(c.frames.filter((f) => f.type === FrameType.RST_STREAM).map((f) => f.stream), []);
    });
  });

  test('200 concurrent unary calls on one grpc-js connection: every one answered, each with its own response', async () => {
    const blobs = await within(
      Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const data = randomBytes(100 + i);
          await writeBlob(client, `h2-many-${i}`, data, { metadata: md(NS) });
          return { digest: sha256(data), size: data.length };
        }),
      ),
      10_000,
      'writing 10 blobs',
    );
    const missing = sha256(Buffer.from('never written'));
    const calls = Array.from({ length: 200 }, async (_, i) => {
      const want = blobs[i % 11];
      if (!want) {
        await rejectsWith(info(client, missing, md(NS)), 'NOT_FOUND');
        return;
      }
      const got = await info(client, want.digest, md(NS));
      assert.deepEqual([got.digest, got.size], [want.digest, want.size], `call ${i}`);
    });
    await within(Promise.all(calls), 15_000, '200 concurrent Info calls');
  });

  test('Read responses queued behind a client that stops reading keep their own bytes (a reused write buffer goes back only once the socket has written it)', async () => {
    const data = randomBytes(64 << 10);
    const size = 6 << 10;
    await within(writeBlob(client, 'h2-queued', data, { metadata: md(NS) }), 10_000, 'writing the blob');
    const c = await connect();
    c.write(windowUpdateFrame(0, 64 * MiB));
    // Unread, the responses fill the socket's buffer: the server's later writes wait in its own queue.
    c.socket.pause();
    const reads: Array<{ stream: number; offset: number }> = [];
    for (let i = 0; i < 120; i++) {
      const offset = (i * 331) % (data.length - size);
      const stream = c.openStream(READ, NS);
      await c.sendMessage(stream, ReadContentRequest.encode({ digest: sha256(data), offset, size }).finish(), true);
      reads.push({ stream, offset });
      // One request per server turn, so each response is a write of its own.
      await pause(2);
    }
    c.socket.resume();
    for (const { stream, offset } of reads) {
      const result = await c.response(stream, 10_000);
      assert.equal(statusOf(result), 'OK');
      const got = Buffer.concat(grpcMessages(result.body).map((m) => ReadContentResponse.decode(m).data));
      assert.ok(got.equals(data.subarray(offset, offset + size)), `stream ${stream} (offset ${offset}) got bytes written for another response`);
    }
  });

  test('a client that advertises SETTINGS_HEADER_TABLE_SIZE 0 (node:http2) gets every response: the size update first, then no indexing', async () => {
    const session = http2Connect('http://localhost', { createConnection: () => netConnect(server.address), settings: { headerTableSize: 0 } });
    session.on('error', () => undefined);
    try {
      for (let call = 0; call < 3; call++) {
        const stream = session.request({ ':method': 'POST', ':path': INFO, 'content-type': 'application/grpc', te: 'trailers', 'containerd-namespace': NS });
        stream.on('error', () => undefined);
        stream.resume();
        stream.end(grpcFrame(infoRequest(digest)));
        const response = once(stream, 'response').then(([headers]) => headers as IncomingHttpHeaders);
        const trailers = once(stream, 'trailers').then(([headers]) => headers as IncomingHttpHeaders);
        const closed = once(stream, 'close').then(() => undefined);
        // nghttp2 rejects a header block it cannot decode with GOAWAY COMPRESSION_ERROR, and the call hangs.
        const headers = await within(Promise.race([response, closed]), 2000, `the response to call ${call}`);
        assert.ok(headers, `call ${call}: the stream closed without a response (RST_STREAM code ${stream.rstCode})`);
        assert.equal(headers[':status'], 200);
        assert.equal((await within(Promise.race([trailers, closed]), 2000, `the trailers of call ${call}`))?.['grpc-status'], '0');
      }
    } finally {
      session.destroy();
    }
  });

  test("fields every response repeats go into the client's HPACK table once: from the second call, response headers are 3 bytes and trailers 1", async () => {
    const c = await connect();
    for (let call = 0; call < 3; call++) {
      const result = await within(c.unary(INFO, infoRequest(digest), NS), 5000, `Info ${call}`);
      assertInfo(result, digest, blob.length);
      assert.deepEqual(result.headers, [
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ['grpc-accept-encoding', 'identity'],
      ]);
      assert.deepEqual(result.trailers, [['grpc-status', '0']]);
      const blocks = result.frames.filter((f) => f.type === FrameType.HEADERS).map((f) => f.payload.length);
      if (call > 0) assert.deepEqual(blocks, [3, 1], `header block sizes of call ${call}`);
      else assert.ok(blocks[0]! > 30, `the first response carries the literals (${blocks[0]} bytes)`);
    }
  });
});

describe('HTTP/2 connection: a response header block larger than a frame', () => {
  let server: TestServer;
  let c: H2Client | undefined;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    c?.close();
    await server?.destroy();
  });

  test(
    'UNIMPLEMENTED for a 20,000-character :path (echoed in grpc-message) arrives in HEADERS + CONTINUATION, and the server lives on',
    async () => {
      c = await H2Client.connect(server.address);
      const path = `/${'a'.repeat(20_000)}`;
      const block = requestHeaders(path, NS);
      const parts = chunks(block);
      c.write(encodeFrame(FrameType.HEADERS, 0, 1, parts[0]), ...parts.slice(1).map((p, i) => encodeFrame(FrameType.CONTINUATION, i === parts.length - 2 ? Flags.END_HEADERS : 0, 1, p)));
      await c.sendMessage(1, infoRequest(sha256(Buffer.alloc(0))), true);
      const result = await c.response(1, 3000);
      if (result.headers === undefined) {
        await pause(200);
        assert.fail(`no response (connection closed: ${c.closed}, server exit code ${server.process.exitCode}): ${server.output().slice(-300)}`);
      }
      assert.equal(statusOf(result), 'UNIMPLEMENTED');
      assert.equal(server.process.exitCode, null, 'the server is still running');
      assert.ok(header(result.headers, 'grpc-message')?.includes(path), 'grpc-message names the path');
      assert.ok(result.frames.some((f) => f.type === FrameType.CONTINUATION), 'the block was split into CONTINUATION frames');
    },
  );
});

describe('HTTP/2 connection: graceful shutdown (SIGTERM)', () => {
  // One sequence over two tests: a Write in flight when SIGTERM arrives, then its completion.
  let server: TestServer;
  let c: H2Client;
  let stream: number;
  let exited: Promise<void>;
  const data = randomBytes(100_000);
  const expected = sha256(data);

  before(async () => {
    server = await startTestServer();
    c = await H2Client.connect(server.address);
    stream = c.openStream(WRITE, NS);
    await c.sendMessage(stream, writeRequest({ action: WriteAction.STAT, ref: 'h2-shutdown', total: data.length, expected }));
    await c.waitFor((f) => f.stream === stream && f.type === FrameType.DATA, 5000, 'the STAT response');
  });
  after(async () => {
    c?.close();
    await server?.destroy();
  });

  test('GOAWAY(NO_ERROR) with last-stream-id = the call in flight; a stream opened after it is refused, not processed', async () => {
    exited = server.stop('SIGTERM');
    exited.catch(() => undefined);
    const goAway = await c.goAway(5000, 'GOAWAY after SIGTERM');
    assert.equal(errorName(goAway.code), 'NO_ERROR');
    assert.equal(goAway.lastStreamId, stream, 'last-stream-id is the call in flight');

    // RFC 9113 §6.8: streams above last-stream-id are not processed; the code resets them with REFUSED_STREAM, which tells a client it may retry them elsewhere.
    const late = c.openStream(INFO, NS);
    await c.sendMessage(late, infoRequest(expected), true);
    await c.ping();
    const lateResult = c.streamResult(late);
    assert.equal(lateResult.headers, undefined, 'no response on a stream opened after the GOAWAY');
    assert.equal(lateResult.reset === undefined ? 'none' : errorName(lateResult.reset), 'REFUSED_STREAM');
  });

  test(
    'the call in flight completes with its status, then the socket ends, the process exits 0, and the commit is durable',
    async () => {
      await c.sendMessage(stream, writeRequest({ action: WriteAction.WRITE, offset: 0, data }));
      await c.sendMessage(stream, writeRequest({ action: WriteAction.COMMIT, offset: data.length, total: data.length, expected }), true);
      const result = await c.response(stream, 5000, 'the Write in flight');
      const responses = grpcMessages(result.body).map((m) => WriteContentResponse.decode(m));
      assert.equal(responses.at(-1)?.digest, expected, 'the COMMIT response');
      assert.equal(statusOf(result), 'OK', `the status of the call in flight (socket closed: ${c.closed}; frames: ${c.summary().slice(-300)})`);

      await c.waitEnded(5000, 'the socket ending once the last call is done');
      await within(exited, 15_000, 'the server exiting');
      assert.equal(server.process.exitCode, 0, server.output().slice(-400));

      // The commit was durable: after a restart the blob is there.
      await server.restart();
      const check = await H2Client.connect(server.address);
      try {
        assertInfo(await check.unary(INFO, infoRequest(expected), NS), expected, data.length);
      } finally {
        check.close();
      }
    },
  );
});

describe('HTTP/2 connection: what each write carries (under strace)', { skip: straceSkip('http2') }, () => {
  let server: TestServer;
  const blob = randomBytes(1000);
  const digest = sha256(blob);
  const large = randomBytes(2 * MiB);
  before(async () => {
    server = await startTestServer();
    const client = contentClient(server.address);
    try {
      await writeBlob(client, 'batched', blob, { metadata: md(NS) });
      await writeBlob(client, 'large', large, { metadata: md(NS) });
    } finally {
      client.close();
    }
  });
  after(async () => {
    if (server) await destroySurvivor(server);
  });

  /** The server's socket writes while during runs, each as the frames it carries, and strace's stderr. */
  async function traceWrites(c: H2Client, during: () => Promise<void>): Promise<{ writes: Frame[][]; stderr: string }> {
    const strace = await Strace.attach(server.process.pid!, `${server.root}.strace`, ['-xx', '-s', '65536', '-e', 'trace=write,writev'], () => c.ping());
    let traced: Awaited<ReturnType<Strace['stop']>>;
    try {
      await during();
    } finally {
      traced = await strace.stop();
    }
    return { writes: socketWrites(traced.lines).map((bytes) => splitFrames(bytes).frames), stderr: traced.stderr };
  }

  test('requests that arrive together with a WINDOW_UPDATE and a PING, as grpc-go sends them: the ACK leaves with the first answer, written at once; the other answers follow in one write', async () => {
    const c = await H2Client.connect(server.address);
    try {
      const streams = [c.newStream(), c.newStream(), c.newStream()];
      const ping = Buffer.from('batch!!!');
      const { writes, stderr } = await traceWrites(c, async () => {
        c.write(
          windowUpdateFrame(0, 1000),
          pingFrame(ping),
          ...streams.flatMap((id) => [encodeFrame(FrameType.HEADERS, Flags.END_HEADERS, id, requestHeaders(INFO, NS)), encodeFrame(FrameType.DATA, Flags.END_STREAM, id, grpcFrame(infoRequest(digest)))]),
        );
        for (const id of streams) assertInfo(await c.response(id, 5000), digest, blob.length);
      });
      const shown = writes.map((frames) => frames.map(describeFrame).join(', ')).join('\n');
      const ackAt = writes.findIndex((frames) => frames.some((f) => f.type === FrameType.PING && f.flags & Flags.ACK && f.payload.equals(ping)));
      assert.ok(ackAt >= 0, `the PING ACK among the writes:\n${shown}\n${stderr}`);
      /** Streams whose whole answer (its DATA, its trailers) a write carries. */
      const answered = (frames: Frame[]): number[] =>
        streams.filter((id) => frames.some((f) => f.stream === id && f.type === FrameType.DATA) && frames.some((f) => f.stream === id && f.type === FrameType.HEADERS && f.flags & Flags.END_STREAM));
      assert.equal(answered(writes[ackAt]!).length, 1, `the ACK's write carries one whole answer:\n${shown}`);
      const later = writes.slice(ackAt + 1).map(answered).filter((ids) => ids.length > 0);
      assert.deepEqual(later.map((ids) => ids.length), [2], `the other two answers leave together, in one later write:\n${shown}`);
    } finally {
      c.close();
    }
  });

  test('a 1 MiB Read answer (containerd reads large blobs in 1 MiB ReadAts) leaves in one write, its status with it', async () => {
    const c = await H2Client.connect(server.address, { settings: [[Setting.INITIAL_WINDOW_SIZE, 16 * MiB]] });
    try {
      c.write(windowUpdateFrame(0, 16 * MiB));
      const stream = c.openStream(READ, NS);
      const { writes, stderr } = await traceWrites(c, async () => {
        await c.sendMessage(stream, ReadContentRequest.encode({ digest: sha256(large), offset: MiB, size: MiB }).finish(), true);
        const result = await c.response(stream, 10_000);
        assert.equal(statusOf(result), 'OK');
        const got = Buffer.concat(grpcMessages(result.body).map((m) => ReadContentResponse.decode(m).data));
        assert.ok(got.equals(large.subarray(MiB)), 'the second MiB of the blob');
      });
      const carrying = writes.map((frames) => frames.filter((f) => f.stream === stream)).filter((frames) => frames.length > 0);
      const shown = carrying.map((frames) => `${frames.length} frames: ${kinds(frames).slice(-3).join(', ')}`).join('\n');
      assert.equal(carrying.length, 1, `the answer's frames in one write:\n${shown}\n${stderr}`);
      assert.deepEqual(kinds(carrying[0]!).slice(-2), ['DATA', 'HEADERS+END_STREAM'], `the status last, after the data:\n${shown}`);
    } finally {
      c.close();
    }
  });
});
