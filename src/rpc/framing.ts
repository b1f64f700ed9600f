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
 * so that a large message (a 1 MiB Read response) is framed without a copy.
 */
export function allocFramable(length: number): Buffer {
  const whole = Buffer.allocUnsafe(PREFIX_LENGTH + length);
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

/**
 * Cuts the stream's DATA chunks into messages. A message that arrives whole
 * in one chunk is a view of it, not a copy. Refuses a message over maxLength
 * as soon as its prefix is seen, before buffering any of it.
 */
export class MessageDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the message being collected, once its prefix is complete. */
  private expected = -1;

  constructor(private readonly maxLength: number) {}

  /** The messages completed by chunk; throws FrameError on a message it must refuse. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.pendingBytes === 0 && this.expected < 0 && chunk.length - at >= PREFIX_LENGTH) {
        // The common case: the prefix is in this chunk.
        this.expected = this.checkPrefix(chunk, at);
        at += PREFIX_LENGTH;
        if (chunk.length - at >= this.expected) {
          out.push(chunk.subarray(at, at + this.expected));
          at += this.expected;
          this.expected = -1;
          continue;
        }
      }
      const take = Math.min(chunk.length - at, this.expected < 0 ? PREFIX_LENGTH - this.pendingBytes : this.expected - this.pendingBytes);
      this.pending.push(chunk.subarray(at, at + take));
      this.pendingBytes += take;
      at += take;
      if (this.expected < 0) {
        if (this.pendingBytes < PREFIX_LENGTH) continue;
        this.expected = this.checkPrefix(Buffer.concat(this.pending, PREFIX_LENGTH), 0);
        this.pending = [];
        this.pendingBytes = 0;
      }
      if (this.pendingBytes === this.expected) {
        out.push(this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes));
        this.pending = [];
        this.pendingBytes = 0;
        this.expected = -1;
      }
    }
    return out;
  }

  /** True when the stream ended in the middle of a message. */
  get partial(): boolean {
    return this.pendingBytes > 0 || this.expected >= 0;
  }

  private checkPrefix(bytes: Buffer, at: number): number {
    if (bytes[at] !== 0) throw new FrameError('compressed', 'compressed messages are not supported (grpc-accept-encoding: identity)');
    const length = bytes.readUInt32BE(at + 1);
    if (length > this.maxLength) throw new FrameError('too-large', `Received message larger than max (${length} vs. ${this.maxLength})`);
    return length;
  }
}
