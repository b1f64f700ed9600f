import type { HeaderField, HeaderMap } from './hpack';

/** What a stream needs from its connection. */
export interface StreamOwner {
  /** Flow-control credit for request bytes the application has taken. */
  consumed(stream: ServerStream, bytes: number): void;
  sendHeaders(stream: ServerStream, fields: readonly HeaderField[], endStream: boolean): void;
  /** Data or trailers were queued on the stream: send what the windows allow. */
  wake(stream: ServerStream): void;
  /** Ends the stream at once with RST_STREAM(CANCEL); response data not yet sent is dropped. */
  cancel(stream: ServerStream): void;
}

interface Outgoing {
  data: Buffer;
  /** Called once the last of data has been written to the socket. */
  callback: (() => void) | undefined;
}

const ignore = (): void => undefined;

/**
 * One HTTP/2 stream as the server sees it: request headers and data in,
 * response headers, data and trailers out. The application sets onData,
 * onEnd (the client half-closed) and onClose (the stream ended before the
 * response did: reset by the client, or the connection went away).
 */
export class ServerStream {
  /** chunk is valid only during the call (the connection's read buffer): what is kept is copied. */
  onData: (chunk: Buffer) => void = ignore;
  onEnd: () => void = ignore;
  onClose: () => void = ignore;

  /** The client sent END_STREAM. */
  remoteEnded = false;
  /** Nothing more can be sent: END_STREAM went out, or the stream was reset. */
  closed = false;

  /** What this side may still send (peer's window), and may still receive before a WINDOW_UPDATE. */
  sendWindow: number;
  receiveWindow: number;
  /** Request bytes taken by the application but not yet given back to the client as window. */
  receiveCredit = 0;

  /** Response data and trailers waiting for flow-control window or the socket. */
  readonly outgoing: Outgoing[] = [];
  /** How much of outgoing[0] has been sent. */
  sentOffset = 0;
  trailers: readonly HeaderField[] | undefined;

  private paused = false;
  private held: Buffer[] = [];
  private endHeld = false;

  constructor(
    readonly id: number,
    readonly headers: HeaderMap,
    sendWindow: number,
    receiveWindow: number,
    private readonly owner: StreamOwner,
  ) {
    this.sendWindow = sendWindow;
    this.receiveWindow = receiveWindow;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Holds request data here (and its flow-control credit, so the client stops once the window is used up). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const chunk of held) {
      if (this.paused) {
        this.held.push(chunk);
        continue;
      }
      this.deliver(chunk);
    }
    if (this.endHeld && !this.paused) {
      this.endHeld = false;
      this.onEnd();
    }
  }

  /** Response headers; the response goes on with write() and ends with end(). */
  respond(fields: readonly HeaderField[]): void {
    if (!this.closed) this.owner.sendHeaders(this, fields, false);
  }

  /** A whole response in one HEADERS frame (trailers-only, or a plain HTTP status). */
  respondAndEnd(fields: readonly HeaderField[]): void {
    if (this.closed) return;
    this.owner.sendHeaders(this, fields, true);
  }

  write(data: Buffer, callback?: () => void): void {
    if (this.closed || this.trailers) {
      callback?.();
      return;
    }
    this.outgoing.push({ data, callback });
    this.owner.wake(this);
  }

  /** Response data is waiting for flow-control window or the socket. */
  get sending(): boolean {
    return this.outgoing.length > 0;
  }

  /** Ends the stream now, whatever is still queued (RST_STREAM(CANCEL)). */
  cancel(): void {
    if (!this.closed) this.owner.cancel(this);
  }

  /** Ends the response with trailers, after the data queued before them. */
  end(trailers: readonly HeaderField[]): void {
    if (this.closed || this.trailers) return;
    this.trailers = trailers;
    this.owner.wake(this);
  }

  /** Called by the connection for each DATA frame's payload. */
  receive(chunk: Buffer): void {
    // Held data outlives the socket read it came in.
    if (this.paused || this.held.length > 0) this.held.push(Buffer.from(chunk));
    else this.deliver(chunk);
  }

  /** Called by the connection on END_STREAM. */
  receiveEnd(): void {
    this.remoteEnded = true;
    if (this.paused || this.held.length > 0) this.endHeld = true;
    else this.onEnd();
  }

  /** The stream ended without its response completing (reset, or the connection closed). */
  abort(): void {
    if (this.closed && this.outgoing.length === 0) return;
    this.closed = true;
    this.dropHeld();
    this.dropOutgoing();
    this.onClose();
  }

  /** Discards request data held by pause() that nobody will read, giving its flow-control window back to the connection. */
  dropHeld(): void {
    const held = this.held;
    if (held.length === 0 && !this.endHeld) return;
    this.held = [];
    this.endHeld = false;
    for (const chunk of held) this.owner.consumed(this, chunk.length);
  }

  /** Gives back the callbacks of data that will never be sent (nothing references it any more). */
  dropOutgoing(): void {
    const dropped = this.outgoing.splice(0);
    this.sentOffset = 0;
    for (const { callback } of dropped) callback?.();
  }

  private deliver(chunk: Buffer): void {
    this.owner.consumed(this, chunk.length);
    this.onData(chunk);
  }
}
