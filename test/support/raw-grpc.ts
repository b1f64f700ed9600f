// gRPC over a bare node:http2 client, for what grpc-js will not put on the
// wire or hides from its caller: a message split across DATA frames or
// several in one, a compressed flag, a bare length prefix, a non-gRPC
// content-type, a stream reset at a chosen moment, the server's own deadline
// (grpc-js enforces the deadline itself), the raw grpc-message header.
// Framing here is written independently of src/rpc, which it is used to test.
import { connect, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';

/** A message with gRPC's prefix: a flag byte (1: compressed) and a 4-byte big-endian length. */
export function grpcFrame(message: Uint8Array, flag = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** An HTTP/2 connection to the server's unix socket. */
export function connectRaw(address: string): ClientHttp2Session {
  const session = connect('http://localhost', { createConnection: () => netConnect(address) });
  // Failures show up on the streams; an unhandled 'error' would end the test process.
  session.on('error', () => undefined);
  return session;
}

/** grpc-message is percent-encoded UTF-8. */
export function decodeGrpcMessage(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export interface RawResult {
  /** The response's :status. */
  httpStatus: number;
  /** grpc-status, from the trailers or a trailers-only response; undefined when there was none. */
  grpcStatus: number | undefined;
  /** grpc-message as sent, still percent-encoded. */
  rawMessage: string;
  /** grpc-message decoded. */
  message: string;
  /** Every response message, prefix removed. */
  messages: Buffer[];
}

export interface RawCallOptions {
  namespace?: string;
  contentType?: string;
  /** grpc-timeout, e.g. "300m". */
  timeout?: string;
}

/**
 * One call on a raw HTTP/2 stream: write() sends bytes as they are (the
 * caller frames them), nextMessage() waits for the next response message,
 * result settles when the response ends or the stream is reset.
 */
export class RawCall {
  readonly stream: ClientHttp2Stream;
  readonly result: Promise<RawResult>;
  private readonly messages: Buffer[] = [];
  private readonly unread: Buffer[] = [];
  private readonly waiters: Array<(message: Buffer | undefined) => void> = [];
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private closed = false;

  constructor(session: ClientHttp2Session, path: string, options: RawCallOptions = {}) {
    this.stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': options.contentType ?? 'application/grpc',
      te: 'trailers',
      ...(options.namespace && { 'containerd-namespace': options.namespace }),
      ...(options.timeout && { 'grpc-timeout': options.timeout }),
    });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    this.stream.on('response', (h) => (headers = h));
    this.stream.on('trailers', (t) => (trailers = t));
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.result = new Promise((resolve) => {
      const settle = (): void => {
        if (this.closed) return;
        this.closed = true;
        for (const waiter of this.waiters.splice(0)) waiter(undefined);
        const status = trailers['grpc-status'] ?? headers['grpc-status'];
        const rawMessage = String(trailers['grpc-message'] ?? headers['grpc-message'] ?? '');
        resolve({
          httpStatus: Number(headers[':status']),
          grpcStatus: status === undefined ? undefined : Number(status),
          rawMessage,
          message: decodeGrpcMessage(rawMessage),
          messages: this.messages,
        });
      };
      // The response is over at its end (trailers in), though the request side may still be
      // open: then the stream is closed here, as grpc-js does once it has the status.
      this.stream.on('end', () => {
        settle();
        if (!this.stream.closed) this.stream.close();
      });
      // A reset stream ('error', then 'close') ends without trailers: no grpc-status.
      this.stream.on('error', () => undefined);
      this.stream.on('close', settle);
    });
  }

  /** Sends bytes in one write (one DATA frame for anything under 16 KiB); resolves once flushed. */
  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.stream.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  /** Half-closes the request side. */
  end(): void {
    this.stream.end();
  }

  /** The next response message; rejects if the stream closes first. */
  async nextMessage(): Promise<Buffer> {
    const message = this.unread.shift() ?? (this.closed ? undefined : await new Promise<Buffer | undefined>((resolve) => this.waiters.push(resolve)));
    if (!message) throw new Error('the stream closed before another response message');
    return message;
  }

  private onData(chunk: Buffer): void {
    // Chunks are joined only once a whole message is in: a 1 MiB response arrives in 16 KiB frames.
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    for (;;) {
      if (this.chunkBytes < 5) return;
      const head = this.chunks[0]!.length >= 5 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const end = 5 + head.readUInt32BE(1);
      if (this.chunkBytes < end) return;
      const all = Buffer.concat(this.chunks, this.chunkBytes);
      this.chunks = [all.subarray(end)];
      this.chunkBytes -= end;
      const message = all.subarray(5, end);
      this.messages.push(message);
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.unread.push(message);
    }
  }
}

/** A unary call: one framed request (or the given bytes as they are), then the result. */
export function rawUnary(session: ClientHttp2Session, path: string, request: Uint8Array | Buffer[], options: RawCallOptions = {}): Promise<RawResult> {
  const call = new RawCall(session, path, options);
  for (const bytes of Array.isArray(request) ? request : [grpcFrame(request)]) call.stream.write(bytes);
  call.end();
  return call.result;
}
