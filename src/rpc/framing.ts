import type { BufferPool } from './buffer-pool';

/**
 * gRPC's length-prefixed messages on an HTTP/2 stream: one flag byte
 * (compressed or not), a 4-byte big-endian length, the message bytes.
 */

export const PREFIX_LENGTH = 5;

/** Marks a message buffer allocated with room for its prefix in front: the whole frame. */
const FRAME = Symbol('frame');

type Framable = Uint8Array & { [FRAME]?: Buffer };

/**
 * A buffer for a message of length bytes, with room for the prefix in front,
 * so that a large message (a 1 MiB Read response) is framed without a copy;
 * carved from backing when given (at least PREFIX_LENGTH + length bytes).
 */
export function allocFramable(length: number, backing?: Buffer): Buffer {
  const whole = backing ? backing.subarray(0, PREFIX_LENGTH + length) : Buffer.allocUnsafe(PREFIX_LENGTH + length);
  const message: Buffer & { [FRAME]?: Buffer } = whole.subarray(PREFIX_LENGTH);
  message[FRAME] = whole;
  return message;
}

/** A message with its prefix, ready for the stream. */
export function frame(message: Framable): Buffer {
  const whole = message[FRAME];
  const out = whole && whole.length === PREFIX_LENGTH + message.length ? whole : Buffer.allocUnsafe(PREFIX_LENGTH + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  if (out !== whole) out.set(message, PREFIX_LENGTH);
  return out;
}

export class FrameError extends Error {
  constructor(
    readonly kind: 'too-large' | 'compressed',
    message: string,
  ) {
    super(message);
  }
}

/** One received message; release, when set, gives its pooled buffer back. */
export interface Received {
  bytes: Buffer;
  release?: () => void;
}

/** Messages up to this size are collected into one buffer as they arrive, from the pool when there is one. */
const PREALLOCATE_MAX = 4 << 20;

/**
 * Cuts the stream's DATA chunks into messages. Chunks are borrowed (views of
 * the connection's read buffer, valid only during push), so every message is
 * copied out of them as it arrives, into a buffer of its size.
 * Refuses a message over maxLength as soon as its prefix is seen.
 */
export class MessageDecoder {
  /** A prefix split across chunks, collected; made only when one is (a Buffer per call is not free). */
  private prefix: Buffer | undefined;
  private prefixBytes = 0;
  /** The message being collected: its buffer (or chunks, for very large ones), length and bytes so far. */
  private target: Buffer | undefined;
  /** Gives target back to the pool, when it came from there. */
  private release: (() => void) | undefined;
  private chunks: Buffer[] = [];
  private expected = -1;
  private filled = 0;

  /** @param pool where collecting buffers come from: only for receivers that release each message when done with it */
  constructor(
    private readonly maxLength: number,
    private readonly pool?: BufferPool,
  ) {}

  /** The messages completed by chunk; throws FrameError on a message it must refuse. */
  push(chunk: Buffer): Received[] {
    const out: Received[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.expected < 0) {
        if (this.prefixBytes === 0 && chunk.length - at >= PREFIX_LENGTH) {
          this.begin(chunk, at);
          at += PREFIX_LENGTH;
        } else {
          const take = Math.min(chunk.length - at, PREFIX_LENGTH - this.prefixBytes);
          const prefix = (this.prefix ??= Buffer.allocUnsafe(PREFIX_LENGTH));
          chunk.copy(prefix, this.prefixBytes, at, at + take);
          this.prefixBytes += take;
          at += take;
          if (this.prefixBytes < PREFIX_LENGTH) continue;
          this.prefixBytes = 0;
          this.begin(prefix, 0);
        }
        this.collect();
        if (this.expected === 0) {
          out.push(this.complete());
          continue;
        }
      }
      const take = Math.min(chunk.length - at, this.expected - this.filled);
      if (this.target) chunk.copy(this.target, this.filled, at, at + take);
      else this.chunks.push(Buffer.from(chunk.subarray(at, at + take)));
      this.filled += take;
      at += take;
      if (this.filled === this.expected) out.push(this.complete());
    }
    return out;
  }

  /** True when the stream ended in the middle of a message. */
  get partial(): boolean {
    return this.prefixBytes > 0 || this.expected >= 0;
  }

  private begin(bytes: Buffer, at: number): void {
    if (bytes[at] !== 0) throw new FrameError('compressed', 'compressed messages are not supported (grpc-accept-encoding: identity)');
    const length = bytes.readUInt32BE(at + 1);
    if (length > this.maxLength) throw new FrameError('too-large', `Received message larger than max (${length} vs. ${this.maxLength})`);
    this.expected = length;
  }

  /** Starts collecting a message that spans chunks. */
  private collect(): void {
    this.filled = 0;
    if (this.expected > PREALLOCATE_MAX) return;
    const { pool } = this;
    const pooled = pool?.take(this.expected);
    this.release = pool && pooled && (() => pool.give(pooled));
    this.target = pooled ?? Buffer.allocUnsafe(this.expected);
  }

  private complete(): Received {
    const received: Received = this.target
      ? { bytes: this.target.subarray(0, this.expected), ...(this.release && { release: this.release }) }
      : { bytes: Buffer.concat(this.chunks, this.expected) };
    this.target = undefined;
    this.release = undefined;
    this.chunks = [];
    this.expected = -1;
    this.filled = 0;
    return received;
  }
}
