// A raw HTTP/2 client for testing the server's own HTTP/2 layer
// (src/rpc/http2): frames are encoded and parsed here, written independently
// of the code under test (which it must not import), so that a test puts on
// the wire exactly what it names (a header block split over CONTINUATION
// frames, padding, an even stream id, a window overrun) and sees every frame
// the server sends back, in order.
//
// HPACK: requests are literals without indexing with literal names (the
// server's dynamic table is never used); responses are decoded in arrival
// order with a dynamic table of their own (ResponseHeaderDecoder), and
// anything the server is not expected to write fails loudly.
import { connect, type Socket } from 'node:net';
import { grpcFrame } from './raw-grpc';

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

export const Setting = { HEADER_TABLE_SIZE: 0x1, ENABLE_PUSH: 0x2, MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4, MAX_FRAME_SIZE: 0x5, MAX_HEADER_LIST_SIZE: 0x6 } as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** RFC 9113 §6.9.2: every window starts here until SETTINGS or WINDOW_UPDATE say otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME = 16_384;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
  /** On the frame that ends a header block: the block's fields, decoded when it arrived (or why it could not be). */
  fields?: [string, string][] | Error;
}

/** promise, or a failure naming what never happened (a broken server must fail the test, not hang it). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- frames

/** One frame: the 9-octet header (24-bit length, type, flags, reserved bit clear, 31-bit stream id), then the payload. */
export function encodeFrame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(out, 9);
  return out;
}

export function settingsFrame(settings: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return encodeFrame(FrameType.SETTINGS, 0, 0, payload);
}

export function windowUpdateFrame(stream: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment);
  return encodeFrame(FrameType.WINDOW_UPDATE, 0, stream, payload);
}

export function rstStreamFrame(stream: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return encodeFrame(FrameType.RST_STREAM, 0, stream, payload);
}

export function pingFrame(data: Buffer, ack = false): Buffer {
  return encodeFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, data);
}

/** A SETTINGS frame's parameters, in order (a later value for the same id wins, as in the RFC). */
export function settingsOf(frame: Frame): Map<number, number> {
  const out = new Map<number, number>();
  for (let at = 0; at + 6 <= frame.payload.length; at += 6) out.set(frame.payload.readUInt16BE(at), frame.payload.readUInt32BE(at + 2));
  return out;
}

export interface GoAway {
  lastStreamId: number;
  code: number;
  debug: string;
}

export function goAwayOf(frame: Frame): GoAway {
  return { lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff, code: frame.payload.readUInt32BE(4), debug: frame.payload.subarray(8).toString('utf8') };
}

/** An error code's name, for assertion messages. */
export function errorName(code: number): string {
  return Object.entries(ErrorCode).find(([, value]) => value === code)?.[0] ?? `0x${code.toString(16)}`;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(FrameType).map(([name, value]) => [value, name])) as Record<number, string>;

/** The whole frames at the start of bytes, and the bytes after them. */
export function splitFrames(bytes: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  while (bytes.length >= 9) {
    const length = bytes.readUIntBE(0, 3);
    if (bytes.length < 9 + length) break;
    frames.push({ type: bytes[3]!, flags: bytes[4]!, stream: bytes.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(bytes.subarray(9, 9 + length)) });
    bytes = bytes.subarray(9 + length);
  }
  return { frames, rest: bytes };
}

/** A frame in one line, for failure messages: "RST_STREAM(3) CANCEL". */
export function describeFrame(frame: Frame): string {
  const name = TYPE_NAMES[frame.type] ?? `type 0x${frame.type.toString(16)}`;
  let detail = `flags=0x${frame.flags.toString(16)} len=${frame.payload.length}`;
  if (frame.type === FrameType.RST_STREAM && frame.payload.length === 4) detail = errorName(frame.payload.readUInt32BE(0));
  if (frame.type === FrameType.GOAWAY && frame.payload.length >= 8) {
    const g = goAwayOf(frame);
    detail = `last=${g.lastStreamId} ${errorName(g.code)} ${JSON.stringify(g.debug)}`;
  }
  if (frame.type === FrameType.WINDOW_UPDATE && frame.payload.length === 4) detail = `+${frame.payload.readUInt32BE(0)}`;
  return `${name}(${frame.stream}) ${detail}`;
}

/** Splits DATA or header-block payload bytes into frames of at most max bytes. */
export function chunks(bytes: Buffer, max = DEFAULT_MAX_FRAME): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += max) out.push(bytes.subarray(at, at + max));
  return out.length > 0 ? out : [Buffer.alloc(0)];
}

// ---- HPACK (RFC 7541), the client's side

/** §5.1: an integer with an N-bit prefix; flags fill the first byte's bits above the prefix. */
export function hpackInteger(value: number, prefix: number, flags = 0): number[] {
  const max = (1 << prefix) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

function hpackString(text: string): number[] {
  const bytes = Buffer.from(text, 'latin1');
  return [...hpackInteger(bytes.length, 7), ...bytes];
}

/** A header block of literals without indexing, literal names, no Huffman (§6.2.2): never touches the server's dynamic table. */
export function literalHeaders(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) out.push(0x00, ...hpackString(name), ...hpackString(value));
  return Buffer.from(out);
}

/** Names of RFC 7541 Appendix A's static table, index 1 to 61. */
const STATIC_NAMES = [
  ':authority', ':method', ':method', ':path', ':path', ':scheme', ':scheme', ':status', ':status', ':status', ':status', ':status', ':status', ':status',
  'accept-charset', 'accept-encoding', 'accept-language', 'accept-ranges', 'accept', 'access-control-allow-origin', 'age', 'allow', 'authorization',
  'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-range', 'content-type',
  'cookie', 'date', 'etag', 'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'link', 'location', 'max-forwards', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'refresh', 'retry-after', 'server',
  'set-cookie', 'strict-transport-security', 'transfer-encoding', 'user-agent', 'vary', 'via', 'www-authenticate',
];

/** Values of the static table's entries that have one (RFC 7541 Appendix A), by index. */
const STATIC_VALUES: Record<number, string> = {
  2: 'GET', 3: 'POST', 4: '/', 5: '/index.html', 6: 'http', 7: 'https',
  8: '200', 9: '204', 10: '206', 11: '304', 12: '400', 13: '404', 14: '500', 16: 'gzip, deflate',
};

/**
 * Decodes the server's response header blocks, in the order they arrive on
 * one connection: indexed fields, literals with and without indexing
 * (plain strings, no Huffman), dynamic table size updates. Anything else
 * fails loudly.
 */
export class ResponseHeaderDecoder {
  /** The dynamic table, newest first. */
  readonly table: [string, string][] = [];
  private size = 0;
  private maxSize = 4096;

  decode(block: Buffer): [string, string][] {
    let pos = 0;
    const integer = (prefix: number): number => {
      const max = (1 << prefix) - 1;
      let value = block[pos++]! & max;
      if (value < max) return value;
      for (let shift = 0; ; shift += 7) {
        if (pos >= block.length) throw new Error('response header block: truncated integer');
        const byte = block[pos++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (block[pos]! & 0x80) throw new Error('response header block: a Huffman string (the test decoder reads plain strings only)');
      const length = integer(7);
      if (pos + length > block.length) throw new Error('response header block: truncated string');
      const text = block.toString('latin1', pos, pos + length);
      pos += length;
      return text;
    };
    const entry = (index: number): [string, string] => {
      if (index >= 1 && index <= STATIC_NAMES.length) return [STATIC_NAMES[index - 1]!, STATIC_VALUES[index] ?? ''];
      const dynamic = this.table[index - STATIC_NAMES.length - 1];
      if (!dynamic) throw new Error(`response header block: index ${index} outside both tables (dynamic table holds ${this.table.length})`);
      return dynamic;
    };
    const out: [string, string][] = [];
    while (pos < block.length) {
      const first = block[pos]!;
      if (first & 0x80) {
        out.push(entry(integer(7)));
      } else if (first & 0x40) {
        const index = integer(6);
        const field: [string, string] = [index === 0 ? string() : entry(index)[0], string()];
        this.table.unshift(field);
        this.size += 32 + field[0].length + field[1].length;
        this.evict();
        out.push(field);
      } else if (first & 0x20) {
        if (out.length > 0) throw new Error('response header block: a table size update after a field');
        this.maxSize = integer(5);
        this.evict();
      } else {
        const index = integer(4);
        out.push([index === 0 ? string() : entry(index)[0], string()]);
      }
    }
    return out;
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const [name, value] = this.table.pop()!;
      this.size -= 32 + name.length + value.length;
    }
  }
}

/** A gRPC request's header block. */
export function requestHeaders(path: string, namespace?: string, extra: ReadonlyArray<readonly [string, string]> = []): Buffer {
  return literalHeaders([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'localhost'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...(namespace ? ([['containerd-namespace', namespace]] as const) : []),
    ...extra,
  ]);
}

/** gRPC messages in a response body (prefix removed); throws on a truncated one. */
export function grpcMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new Error(`response body: ${body.length - at} bytes left, not a message prefix`);
    const end = at + 5 + body.readUInt32BE(at + 1);
    if (end > body.length) throw new Error('response body: a truncated message');
    out.push(body.subarray(at + 5, end));
    at = end;
  }
  return out;
}

// ---- the connection

export interface ConnectOptions {
  /** Sent in the client's first SETTINGS frame. */
  settings?: ReadonlyArray<readonly [number, number]>;
  /** Send the preface and SETTINGS and wait for the server's SETTINGS (default); false leaves the socket bare for a test to write what it wants. */
  preface?: boolean;
}

/** What one stream's response came to. */
export interface StreamResult {
  /** The first header block (response headers, or the whole trailers-only response). */
  headers: [string, string][] | undefined;
  /** A later header block, with END_STREAM. */
  trailers: [string, string][] | undefined;
  body: Buffer;
  /** RST_STREAM's error code, when the server reset the stream. */
  reset: number | undefined;
  /** Every frame the server sent on the stream, in order. */
  frames: Frame[];
}

/** One header's value (the last one with that name). */
export function header(fields: ReadonlyArray<readonly [string, string]> | undefined, name: string): string | undefined {
  return fields?.filter(([n]) => n === name).at(-1)?.[1];
}

/**
 * An HTTP/2 client connection on a raw socket. Every frame the server sends
 * is kept in `frames`, in order; the server's SETTINGS are acknowledged
 * (any other reply is the test's to send). Send windows for DATA from this
 * side are tracked from the server's SETTINGS and WINDOW_UPDATEs.
 */
export class H2Client {
  readonly frames: Frame[] = [];
  /** Bytes after the last complete frame. */
  private pending = Buffer.alloc(0);
  private readonly hpack = new ResponseHeaderDecoder();
  private headerParts: Buffer[] | undefined;
  private readonly listeners = new Set<() => void>();
  /** Socket closed (or ended by the server: 'end'). */
  closed = false;
  ended = false;
  /** Called for every frame as it arrives, before waiters look at it. */
  onFrame: ((frame: Frame) => void) | undefined;

  /** What this side may still send (RFC 9113 §6.9): the connection, and each stream. */
  connectionSendWindow = DEFAULT_WINDOW;
  private initialStreamWindow = DEFAULT_WINDOW;
  private readonly streamSendWindows = new Map<number, number>();
  private nextStream = 1;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.ended = true;
      this.changed();
    });
    socket.on('close', () => {
      this.closed = true;
      this.changed();
    });
    // A reset from the server shows up as 'close'; tests look at that.
    socket.on('error', () => undefined);
  }

  static async connect(address: string, options: ConnectOptions = {}): Promise<H2Client> {
    const socket = connect(address);
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      5000,
      `connecting to ${address}`,
    );
    const client = new H2Client(socket);
    if (options.preface ?? true) {
      client.write(Buffer.concat([PREFACE, settingsFrame(options.settings ?? [])]));
      // Once the server's SETTINGS are in (and ACKed), no frame of ours can land in the middle of what a test sends next.
      await client.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) === 0, 5000, 'the server’s SETTINGS');
    }
    return client;
  }

  /** A new client stream id (odd, increasing). */
  newStream(): number {
    const id = this.nextStream;
    this.nextStream += 2;
    return id;
  }

  write(...bytes: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(bytes.length === 1 ? bytes[0]! : Buffer.concat(bytes));
  }

  close(): void {
    this.socket.destroy();
  }

  /** The first frame (from index `from`) matching predicate; fails after ms, listing what did arrive. */
  waitFor(predicate: (frame: Frame) => boolean, ms: number, what: string, from = 0): Promise<Frame> {
    const found = (): Frame | undefined => this.frames.slice(from).find(predicate);
    return this.until(() => found() ?? (this.closed ? null : undefined), ms, what).then((frame) => {
      if (frame === null) throw new Error(`${what}: the connection closed first; frames: ${this.summary()}`);
      return frame;
    });
  }

  /** Resolves once the socket is closed (the server ended or reset it). */
  async waitClosed(ms: number, what: string): Promise<void> {
    await this.until(() => (this.closed ? true : undefined), ms, what);
  }

  /** Resolves once the server ended its side ('end') or the socket closed. */
  async waitEnded(ms: number, what: string): Promise<void> {
    await this.until(() => (this.ended || this.closed ? true : undefined), ms, what);
  }

  /** The server's GOAWAY, once it arrives. */
  async goAway(ms: number, what: string): Promise<GoAway> {
    return goAwayOf(await this.waitFor((f) => f.type === FrameType.GOAWAY, ms, what));
  }

  /**
   * A round trip: the server answers PINGs in order with the frames it
   * emits, so whatever it sent in reply to frames before this one has
   * arrived once the ACK has.
   */
  async ping(ms = 5000): Promise<void> {
    const data = Buffer.alloc(8);
    data.writeDoubleBE(Math.random());
    const from = this.frames.length;
    this.write(pingFrame(data));
    await this.waitFor((f) => f.type === FrameType.PING && (f.flags & Flags.ACK) !== 0 && f.payload.equals(data), ms, 'PING ACK', from);
  }

  /** Opens a request stream: one HEADERS frame with the whole block. */
  openStream(path: string, namespace?: string, options: { stream?: number; endStream?: boolean } = {}): number {
    const stream = options.stream ?? this.newStream();
    this.write(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS | (options.endStream ? Flags.END_STREAM : 0), stream, requestHeaders(path, namespace)));
    return stream;
  }

  /** What this side may send on a stream now (the smaller of its window and the connection's). */
  sendWindow(stream: number): number {
    return Math.min(this.connectionSendWindow, this.streamSendWindows.get(stream) ?? this.initialStreamWindow);
  }

  /** The stream's own send window, as the server has granted it so far. */
  streamWindow(stream: number): number {
    return this.streamSendWindows.get(stream) ?? this.initialStreamWindow;
  }

  /**
   * Sends bytes as DATA frames of at most 16 KiB. With respectWindow
   * (default) each frame waits for window (failing after ms); without, the
   * bytes go out regardless and the windows go negative.
   */
  async sendData(stream: number, bytes: Buffer, options: { endStream?: boolean; respectWindow?: boolean; ms?: number } = {}): Promise<void> {
    const parts = chunks(bytes);
    for (let i = 0; i < parts.length; i++) {
      let part = parts[i]!;
      if (options.respectWindow ?? true) {
        // Window may open in pieces smaller than a frame.
        while (part.length > 0 && this.sendWindow(stream) < part.length) {
          const room = this.sendWindow(stream);
          if (room > 0) {
            this.writeData(stream, part.subarray(0, room), false);
            part = part.subarray(room);
            continue;
          }
          await this.until(() => (this.sendWindow(stream) > 0 ? true : undefined), options.ms ?? 5000, `window to send on stream ${stream} (connection ${this.connectionSendWindow}, stream ${this.streamWindow(stream)})`);
        }
      }
      this.writeData(stream, part, (options.endStream ?? false) && i === parts.length - 1);
    }
  }

  /** Sends one gRPC message on a stream, honouring windows. */
  sendMessage(stream: number, message: Uint8Array, endStream = false): Promise<void> {
    return this.sendData(stream, grpcFrame(message), { endStream });
  }

  /** Waits for the stream's response to end (trailers with END_STREAM, a reset, or the connection closing) and returns it. */
  async response(stream: number, ms: number, what = `the response on stream ${stream}`): Promise<StreamResult> {
    await this.waitFor(
      (f) => f.stream === stream && (f.type === FrameType.RST_STREAM || ((f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION) && this.blockEndsStream(f))),
      ms,
      what,
    ).catch((e: unknown) => {
      // A GOAWAY'd connection: what the stream got so far is the answer.
      if (!this.closed) throw e;
    });
    return this.streamResult(stream);
  }

  /** Sends a whole unary call (headers, one message, END_STREAM) on a new stream and waits for its response. */
  async unary(path: string, message: Uint8Array, namespace?: string, ms = 5000): Promise<StreamResult> {
    const stream = this.openStream(path, namespace);
    await this.sendMessage(stream, message, true);
    return this.response(stream, ms);
  }

  /** Everything received on a stream so far, header blocks reassembled from HEADERS and CONTINUATION. */
  streamResult(stream: number): StreamResult {
    const frames = this.frames.filter((f) => f.stream === stream);
    const blocks: [string, string][][] = [];
    const bodies: Buffer[] = [];
    let reset: number | undefined;
    for (const f of frames) {
      if (f.type === FrameType.DATA) bodies.push(unpad(f));
      else if (f.type === FrameType.RST_STREAM) reset = f.payload.readUInt32BE(0);
      if (f.fields instanceof Error) throw f.fields;
      if (f.fields) blocks.push(f.fields);
    }
    return { headers: blocks[0], trailers: blocks[1], body: Buffer.concat(bodies), reset, frames };
  }

  /** "SETTINGS(0) ..., WINDOW_UPDATE(0) +..." */
  summary(): string {
    return this.frames.map(describeFrame).join(', ') || '(none)';
  }

  /** Does the header block this frame ends carry END_STREAM (set on its HEADERS frame)? */
  private blockEndsStream(last: Frame): boolean {
    if (!(last.flags & Flags.END_HEADERS)) return false;
    const i = this.frames.lastIndexOf(last);
    for (let j = i; j >= 0; j--) {
      const f = this.frames[j]!;
      if (f.stream === last.stream && f.type === FrameType.HEADERS) return (f.flags & Flags.END_STREAM) !== 0;
    }
    return false;
  }

  private writeData(stream: number, bytes: Buffer, endStream: boolean): void {
    this.connectionSendWindow -= bytes.length;
    this.streamSendWindows.set(stream, this.streamWindow(stream) - bytes.length);
    this.write(encodeFrame(FrameType.DATA, endStream ? Flags.END_STREAM : 0, stream, bytes));
  }

  /** Resolves once check() is true (checked at every frame and socket event); fails after ms. */
  async waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
    await this.until(() => (check() ? true : undefined), ms, what);
  }

  private until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    let listener: (() => void) | undefined;
    const done = new Promise<T>((resolve) => {
      listener = () => {
        const value = check();
        if (value !== undefined) resolve(value);
      };
      this.listeners.add(listener);
    });
    return within(done, ms, `${what} (frames so far: ${this.summary().slice(-600)})`).finally(() => this.listeners.delete(listener!));
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private onData(chunk: Buffer): void {
    const { frames, rest } = splitFrames(this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk);
    for (const frame of frames) {
      this.account(frame);
      this.decodeHeaders(frame);
      this.frames.push(frame);
      this.onFrame?.(frame);
    }
    this.pending = Buffer.from(rest);
    this.changed();
  }

  /** Header blocks are decoded as they arrive: the server's HPACK table changes in wire order, across streams. */
  private decodeHeaders(frame: Frame): void {
    if (frame.type === FrameType.HEADERS) this.headerParts = [unpad(frame)];
    else if (frame.type === FrameType.CONTINUATION && this.headerParts) this.headerParts.push(frame.payload);
    else return;
    if (!(frame.flags & Flags.END_HEADERS)) return;
    const block = Buffer.concat(this.headerParts);
    this.headerParts = undefined;
    try {
      frame.fields = this.hpack.decode(block);
    } catch (e) {
      frame.fields = e as Error;
    }
  }

  /** Windows for this side's DATA, and the SETTINGS ACK every client owes. */
  private account(frame: Frame): void {
    if (frame.type === FrameType.SETTINGS && !(frame.flags & Flags.ACK)) {
      const initial = settingsOf(frame).get(Setting.INITIAL_WINDOW_SIZE);
      if (initial !== undefined) {
        const delta = initial - this.initialStreamWindow;
        this.initialStreamWindow = initial;
        for (const [id, window] of this.streamSendWindows) this.streamSendWindows.set(id, window + delta);
      }
      this.write(encodeFrame(FrameType.SETTINGS, Flags.ACK, 0));
    } else if (frame.type === FrameType.WINDOW_UPDATE && frame.payload.length === 4) {
      const increment = frame.payload.readUInt32BE(0) & 0x7fffffff;
      if (frame.stream === 0) this.connectionSendWindow += increment;
      else this.streamSendWindows.set(frame.stream, this.streamWindow(frame.stream) + increment);
    }
  }
}

function unpad(frame: Frame): Buffer {
  let payload = frame.payload;
  if (frame.flags & Flags.PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
  if (frame.type === FrameType.HEADERS && frame.flags & Flags.PRIORITY) payload = payload.subarray(5);
  return payload;
}
