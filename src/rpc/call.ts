import { EventEmitter } from 'node:events';
import { BufferPool } from './buffer-pool';
import { frame, FrameError, MessageDecoder, type Received } from './framing';
import type { HeaderField, HeaderMap } from './http2/hpack';
import type { ServerStream } from './http2/stream';
import { Code, type CallError, type MethodDefinition } from './types';

/** The request's metadata (HTTP/2 headers), read the way grpc-js's Metadata is. */
export class RequestMetadata {
  constructor(private readonly headers: HeaderMap) {}

  get(key: string): string[] {
    const value = this.headers[key.toLowerCase()];
    if (value === undefined) return [];
    return Array.isArray(value) ? value : [value];
  }
}

export interface CallLimits {
  maxReceiveMessageSize: number;
  maxSendMessageSize: number;
}

const STATUS_OK: HeaderField = [':status', '200'];
const CONTENT_TYPE: HeaderField = ['content-type', 'application/grpc'];
const ACCEPT_ENCODING: HeaderField = ['grpc-accept-encoding', 'identity'];
const GRPC_OK: HeaderField = ['grpc-status', '0'];

/** Fields of every call's response: the connection indexes them in the client's HPACK table. */
export const REPEATED_FIELDS: ReadonlySet<HeaderField> = new Set([STATUS_OK, CONTENT_TYPE, ACCEPT_ENCODING, GRPC_OK]);

/** Every response starts with these; an error before any message adds its status to them (trailers-only). */
const RESPONSE_HEADERS = [STATUS_OK, CONTENT_TYPE];
const RESPONSE_HEADER_FIELDS = [...RESPONSE_HEADERS, ACCEPT_ENCODING];
const OK_TRAILERS = [GRPC_OK];

/** Incoming messages held before the stream is paused (HTTP/2 flow control then holds the client). */
const QUEUE_HIGH_WATER = 4;

/** Buffers of client-streamed messages (1 MiB Write requests), shared by all calls. */
const receivePool = new BufferPool();

interface Queued<Req> {
  message: Req;
  release?: () => void;
}

/**
 * One gRPC call on one HTTP/2 stream: request messages in, response
 * messages out, one status at the end. Events: 'cancelled' when the client
 * goes away (or the deadline passes) before the status was sent, 'end' when
 * the client half-closes a client-streaming call.
 */
export class ServerCall<Req = unknown, Res = unknown> extends EventEmitter {
  readonly metadata: RequestMetadata;
  /** The request, for methods that take one message. */
  request!: Req;
  cancelled = false;
  private headersSent = false;
  private finished = false;
  private readonly decoder: MessageDecoder;
  private readonly queue: Queued<Req>[] = [];
  private waiting: ((result: IteratorResult<Queued<Req>>) => void) | undefined;
  private halfClosed = false;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: ServerStream,
    private readonly method: MethodDefinition<Req, Res>,
    private readonly limits: CallLimits,
  ) {
    super();
    this.metadata = new RequestMetadata(stream.headers);
    // Only client streams take pooled buffers: messages() knows when each message is done with.
    this.decoder = new MessageDecoder(limits.maxReceiveMessageSize, method.requestStream ? receivePool : undefined);
    stream.onClose = () => this.onClose();
    const timeout = parseTimeout(stream.headers['grpc-timeout']);
    if (timeout !== undefined) {
      this.deadline = setTimeout(() => {
        this.markCancelled();
        if (this.stream.sending) {
          // The status would wait behind response data the client is not taking: the stream is reset instead, and its close ends the call.
          this.stream.cancel();
          return;
        }
        this.fail({ code: Code.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
      }, timeout);
    }
  }

  /**
   * Feeds the request stream to the call: onFirst runs once the one request
   * message of a unary or server-streaming method is in; for client streams,
   * messages() yields them as they come.
   */
  start(onFirst: () => void): void {
    const single = !this.method.requestStream;
    let received = 0;
    this.stream.onData = (chunk: Buffer) => {
      if (this.finished) return;
      let messages: Received[];
      try {
        messages = this.decoder.push(chunk);
      } catch (e) {
        const tooLarge = e instanceof FrameError && e.kind === 'too-large';
        this.fail({ code: tooLarge ? Code.RESOURCE_EXHAUSTED : Code.INTERNAL, details: (e as Error).message });
        return;
      }
      for (const { bytes, release } of messages) {
        let message: Req;
        try {
          message = this.method.requestDeserialize(bytes);
        } catch (e) {
          release?.();
          this.fail({ code: Code.INTERNAL, details: `Error deserializing request: ${(e as Error).message}` });
          return;
        }
        received++;
        if (single) {
          if (received > 1) {
            this.fail({ code: Code.UNIMPLEMENTED, details: 'received a second request message for a method that takes one' });
            return;
          }
          this.request = message;
        } else {
          this.enqueue({ message, release });
        }
      }
    };
    this.stream.onEnd = () => {
      if (this.finished) return;
      if (this.decoder.partial) {
        this.fail({ code: Code.INTERNAL, details: 'the request ended in the middle of a message' });
        return;
      }
      if (single) {
        if (received === 0) this.fail({ code: Code.UNIMPLEMENTED, details: 'no request message received' });
        else onFirst();
        return;
      }
      this.halfClosed = true;
      this.waiting?.({ done: true, value: undefined });
      this.waiting = undefined;
      this.emit('end');
    };
    if (!single) onFirst();
  }

  /**
   * Request messages of a client-streaming call, until the client half-closes
   * or the call ends. A message's bytes (a Write request's data) stay valid
   * until the next message is asked for, or the loop over them ends: then its
   * buffer goes back to the pool.
   */
  async *messages(): AsyncGenerator<Req> {
    let release: (() => void) | undefined;
    try {
      for (;;) {
        release?.();
        release = undefined;
        let next = this.queue.shift();
        if (next) {
          if (this.queue.length < QUEUE_HIGH_WATER && this.stream.isPaused) this.stream.resume();
        } else {
          if (this.halfClosed || this.finished) return;
          const result = await new Promise<IteratorResult<Queued<Req>>>((resolve) => (this.waiting = resolve));
          if (result.done) return;
          next = result.value;
        }
        release = next.release;
        yield next.message;
      }
    } finally {
      release?.();
    }
  }

  /**
   * Sends a message; resolves once the transport has written it, so that a
   * client that stops reading holds up one message per call (HTTP/2 flow
   * control), or at once when the call is cancelled or already over.
   */
  send(message: Res): Promise<void> {
    return new Promise((resolve) => this.write(message, resolve));
  }

  /** Sends a message (nothing once the call is over); callback as for send(). */
  write(message: Res, callback?: () => void): void {
    if (this.finished || this.stream.closed) {
      callback?.();
      return;
    }
    const bytes = this.method.responseSerialize(message);
    if (bytes.length > this.limits.maxSendMessageSize) {
      this.fail({ code: Code.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${bytes.length} vs. ${this.limits.maxSendMessageSize})` });
      callback?.();
      return;
    }
    this.sendHeaders();
    // The stream calls back once the bytes are written or dropped; a cancelled call settles everything at once.
    // Not on a normal end: the message may still wait for the socket behind the status.
    if (callback) {
      let called = false;
      const done = (): void => {
        if (called) return;
        called = true;
        this.off('cancelled', done);
        callback();
      };
      this.once('cancelled', done);
      this.stream.write(frame(bytes), done);
      return;
    }
    this.stream.write(frame(bytes));
  }

  /** Ends the call with OK. */
  end(): void {
    this.sendStatus(Code.OK, '');
  }

  /** Ends the call with an error status. */
  fail(error: CallError): void {
    this.sendStatus(error.code, error.details);
  }

  private enqueue(queued: Queued<Req>): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ done: false, value: queued });
      return;
    }
    this.queue.push(queued);
    if (this.queue.length >= QUEUE_HIGH_WATER) this.stream.pause();
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADER_FIELDS);
  }

  private sendStatus(code: Code, details: string): void {
    if (this.finished) return;
    this.finish();
    if (this.stream.closed) return;
    if (code === Code.OK && !details && this.headersSent) {
      this.stream.end(OK_TRAILERS);
      return;
    }
    const trailers: HeaderField[] = [['grpc-status', String(code)]];
    if (details) trailers.push(['grpc-message', encodeMessage(details)]);
    if (!this.headersSent) {
      // Trailers-only: one HEADERS frame ends the call.
      this.headersSent = true;
      this.stream.respondAndEnd([...RESPONSE_HEADERS, ...trailers]);
      return;
    }
    this.stream.end(trailers);
  }

  private finish(): void {
    this.finished = true;
    clearTimeout(this.deadline);
    this.queue.length = 0;
    this.waiting?.({ done: true, value: undefined });
    this.waiting = undefined;
    this.emit('finished');
  }

  private onClose(): void {
    if (this.finished) return;
    this.markCancelled();
    this.finish();
  }

  private markCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }
}

/** grpc-timeout: up to 8 digits and a unit (hours down to nanoseconds), as milliseconds. */
function parseTimeout(value: string | string[] | undefined): number | undefined {
  const match = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  if (!match) return undefined;
  const scale = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[match[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'];
  return Math.min(Number(match[1]) * scale, 2 ** 31 - 1);
}

/** grpc-message is percent-encoded: every byte outside printable ASCII, and '%'. */
function encodeMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
