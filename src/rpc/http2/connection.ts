import type { Socket } from 'node:net';
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  encodeFrame,
  ErrorCode,
  Flag,
  FRAME_HEADER,
  FrameType,
  MAX_WINDOW,
  PREFACE,
  Setting,
  uint32,
  writeFrameHeader,
} from './frames';
import { BufferPool } from '../buffer-pool';
import { HeaderDecoder, HeaderEncoder, HpackError, type HeaderField, type HeaderMap } from './hpack';
import { readIntoOwnBuffer } from './socket-input';
import { ServerStream, type StreamOwner } from './stream';
import { StreamTable } from './stream-table';

export interface ConnectionSettings {
  /** Per-stream receive window advertised to the client. */
  streamWindow: number;
  /** Receive window of the whole connection. */
  connectionWindow: number;
  /** Response fields sent on every call: indexed in the client's HPACK table after their first use. */
  repeatedFields: ReadonlySet<HeaderField>;
}

/** Largest header block (HEADERS + CONTINUATION) accepted: far above gRPC's 8 KiB metadata default. */
const MAX_HEADER_BLOCK = 256 << 10;
/**
 * Socket bytes queued before response data waits for 'drain'. Above a 1 MiB
 * Read message with its framing, so that it leaves in one write with its
 * status (at 1 MiB, its last 5 bytes and the status took a second write).
 */
const SOCKET_BUFFER = 2 << 20;
/** Below this, one turn's frames are copied into a single buffer: one small write instead of several. */
const COALESCE_MAX = 64 << 10;
/**
 * Those single buffers, reused: a fresh one per write (a 32 KiB Read's
 * response is one) made V8 run a full collection some 25 times a second
 * under sequential 32 KiB reads, for the external memory alone.
 */
const coalesceBuffers = new BufferPool();
/** How many early-closed stream ids are remembered, for telling late frames from a misbehaving client. */
const CLOSED_EARLY_KEPT = 256;

class ConnectionError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A header block being assembled from HEADERS and CONTINUATION frames. */
interface PendingHeaders {
  stream: number;
  endStream: boolean;
  parts: Buffer[];
  size: number;
}

/**
 * The server side of one HTTP/2 connection (RFC 9113), with what gRPC uses:
 * streams the client opens, flow control both ways, SETTINGS, PING, GOAWAY.
 * No server push, no priorities (ignored, as the RFC allows). Each request
 * stream is handed to onStream once its headers are in.
 *
 * Written for gRPC's per-call cost: node:http2 spends about 40 µs of CPU on
 * each call before the handler runs, this about a quarter of that. Frames
 * going out in one event-loop turn leave in one socket write.
 */
export class Http2Connection implements StreamOwner {
  private readonly streams = new StreamTable();
  private readonly decoder = new HeaderDecoder();
  private readonly encoder: HeaderEncoder;
  private lastStreamId = 0;
  private prefaceSeen = 0;
  private settingsSeen = false;

  private sendWindow = DEFAULT_WINDOW;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private receiveWindow: number;
  private receiveCredit = 0;

  /** Frame assembly across socket reads. */
  private readonly header = Buffer.alloc(FRAME_HEADER);
  private headerFill = 0;
  /** A frame whose payload spans socket reads is collected here, except unpadded DATA (below). */
  private payload: Buffer | undefined;
  private payloadFill = 0;
  /**
   * Bytes still to come of an unpadded DATA frame that spans socket reads:
   * its payload is handed on piece by piece as it arrives (as DATA frames of
   * their own, END_STREAM on the last), not copied into a fresh buffer (a
   * quarter of an ingest's bytes, and the collections their allocation set off).
   */
  private dataLeft = 0;
  private dataFlags = 0;
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  private pendingHeaders: PendingHeaders | undefined;

  /** Output of this event-loop turn, written together on the next tick. */
  private out: Buffer[] = [];
  private outBytes = 0;
  private outCallbacks: (() => void)[] = [];
  private flushScheduled = false;
  private unhurriedFlushScheduled = false;
  /**
   * Set by each socket read until a response is complete: the first call a
   * read finishes is written at once, so that the client starts on it while
   * the rest of what that read brought is answered (and written together).
   * With 8 Info calls in flight each read brings several requests.
   */
  private firstAnswerPending = false;
  /** Streams with response data or trailers not yet sent. */
  private readonly sending = new StreamTable();
  private waitingForDrain = false;

  private goingAway = false;
  private closed = false;

  /** Recent streams this side closed while the client was still sending: its frames on them may still be in flight. */
  private readonly closedEarly = new Set<number>();

  /** Where bytes in and out go: the accepted socket's connection, reading into a buffer of its own. */
  private readonly socket: Socket;

  /** @param accepted a connection from a net.Server created with pauseOnConnect (see readIntoOwnBuffer) */
  constructor(
    accepted: Socket,
    private readonly settings: ConnectionSettings,
    private readonly onStream: (stream: ServerStream) => void,
    /** A bug on this side (not the client's doing): the connection is closed with INTERNAL_ERROR and this is told. */
    private readonly onInternalError: (error: unknown) => void,
  ) {
    this.receiveWindow = settings.connectionWindow;
    this.encoder = new HeaderEncoder(settings.repeatedFields);
    const initial = Buffer.alloc(6);
    initial.writeUInt16BE(Setting.INITIAL_WINDOW_SIZE, 0);
    initial.writeUInt32BE(settings.streamWindow, 2);
    this.emit(encodeFrame(FrameType.SETTINGS, 0, 0, initial));
    this.emit(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, uint32(settings.connectionWindow - DEFAULT_WINDOW)));
    const socket = (this.socket = readIntoOwnBuffer(accepted, (chunk) => this.onSocketData(chunk)));
    socket.on('close', () => this.onSocketClose());
    // The socket closes after an error: 'close' cleans up.
    socket.on('error', () => undefined);
  }

  /** Graceful close (GOAWAY): calls in flight finish, no new ones start; the socket ends when the last stream does. */
  close(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.emit(goAway(this.lastStreamId, ErrorCode.NO_ERROR));
    this.endIfIdle();
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- StreamOwner

  consumed(stream: ServerStream, bytes: number): void {
    this.creditConnection(bytes);
    if (stream.remoteEnded || stream.closed) return;
    stream.receiveCredit += bytes;
    if (stream.receiveCredit >= this.settings.streamWindow / 4) {
      stream.receiveWindow += stream.receiveCredit;
      this.emit(encodeFrame(FrameType.WINDOW_UPDATE, 0, stream.id, uint32(stream.receiveCredit)));
      stream.receiveCredit = 0;
    }
  }

  sendHeaders(stream: ServerStream, fields: readonly HeaderField[], endStream: boolean): void {
    this.queueHeaderBlock(stream.id, fields, endStream);
    this.scheduleFlush();
    if (endStream) this.finishStream(stream);
  }

  cancel(stream: ServerStream): void {
    this.resetStream(stream.id, ErrorCode.CANCEL);
  }

  wake(stream: ServerStream): void {
    this.sending.add(stream);
    if (this.firstAnswerPending && stream.trailers) {
      this.firstAnswerPending = false;
      this.flush();
      return;
    }
    this.scheduleFlush();
  }

  // ---- input

  /**
   * chunk is borrowed: the next socket read overwrites it. Frames are handled
   * within this call; what outlives it is copied (a stream's held data, a
   * header block awaiting CONTINUATION, and received messages, by the message
   * decoder).
   */
  private onSocketData(chunk: Buffer): void {
    if (this.closed) return;
    this.firstAnswerPending = true;
    try {
      let offset = 0;
      if (this.prefaceSeen < PREFACE.length) offset = this.readPreface(chunk);
      this.readFrames(chunk, offset);
    } catch (e) {
      // Whatever goes wrong on one connection ends that connection, not the server.
      if (e instanceof ConnectionError) this.fail(e.code, e.message);
      else {
        this.onInternalError(e);
        this.fail(ErrorCode.INTERNAL_ERROR, 'internal error');
      }
    }
  }

  private readPreface(chunk: Buffer): number {
    const take = Math.min(PREFACE.length - this.prefaceSeen, chunk.length);
    if (chunk.compare(PREFACE, this.prefaceSeen, this.prefaceSeen + take, 0, take) !== 0) {
      // Not HTTP/2 (an HTTP/1 request, say): nothing sensible to answer.
      this.closed = true;
      this.socket.destroy();
      this.abortStreams();
      return chunk.length;
    }
    this.prefaceSeen += take;
    return take;
  }

  private readFrames(chunk: Buffer, start: number): void {
    let offset = start;
    while (offset < chunk.length && !this.closed) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, chunk.length - offset);
        this.dataLeft -= take;
        this.frameFlags = this.dataLeft === 0 ? this.dataFlags : this.dataFlags & ~Flag.END_STREAM;
        this.onFrame(chunk.subarray(offset, offset + take));
        offset += take;
        continue;
      }
      if (this.payload === undefined) {
        let header: Buffer;
        let at: number;
        if (this.headerFill === 0 && chunk.length - offset >= FRAME_HEADER) {
          header = chunk;
          at = offset;
          offset += FRAME_HEADER;
        } else {
          const take = Math.min(FRAME_HEADER - this.headerFill, chunk.length - offset);
          chunk.copy(this.header, this.headerFill, offset, offset + take);
          this.headerFill += take;
          offset += take;
          if (this.headerFill < FRAME_HEADER) return;
          this.headerFill = 0;
          header = this.header;
          at = 0;
        }
        const length = (header[at]! << 16) | (header[at + 1]! << 8) | header[at + 2]!;
        this.frameType = header[at + 3]!;
        this.frameFlags = header[at + 4]!;
        this.frameStream = header.readUInt32BE(at + 5) & 0x7fffffff;
        if (length > DEFAULT_MAX_FRAME) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes`);
        if (chunk.length - offset >= length) {
          this.onFrame(chunk.subarray(offset, offset + length));
          offset += length;
          continue;
        }
        if (this.frameType === FrameType.DATA && !(this.frameFlags & Flag.PADDED)) {
          this.dataLeft = length;
          this.dataFlags = this.frameFlags;
          continue;
        }
        this.payload = Buffer.allocUnsafe(length);
        this.payloadFill = 0;
      }
      const take = Math.min(this.payload.length - this.payloadFill, chunk.length - offset);
      chunk.copy(this.payload, this.payloadFill, offset, offset + take);
      this.payloadFill += take;
      offset += take;
      if (this.payloadFill === this.payload.length) {
        const payload = this.payload;
        this.payload = undefined;
        this.onFrame(payload);
      }
    }
  }

  private onFrame(payload: Buffer): void {
    const type = this.frameType;
    const flags = this.frameFlags;
    const id = this.frameStream;
    if (!this.settingsSeen) {
      if (type !== FrameType.SETTINGS || flags & Flag.ACK) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the client preface must start with SETTINGS');
      this.settingsSeen = true;
    }
    if (this.pendingHeaders && type !== FrameType.CONTINUATION) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'header block interrupted');
    switch (type) {
      case FrameType.DATA:
        return this.onData(id, flags, payload);
      case FrameType.HEADERS:
        return this.onHeaders(id, flags, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(id, flags, payload);
      case FrameType.PRIORITY:
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.resetStream(id, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM:
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM length');
        if (id > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
        return this.dropStream(id);
      case FrameType.SETTINGS:
        return this.onSettings(id, flags, payload);
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case FrameType.PING:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING length');
        if (!(flags & Flag.ACK)) this.emitUnhurried(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client opens no more streams; those open finish, then the socket ends.
        this.goingAway = true;
        this.endIfIdle();
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, payload);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  private onData(id: number, flags: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const flowLength = payload.length;
    this.receiveWindow -= flowLength;
    if (this.receiveWindow < 0) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection receive window exceeded');
    const data = unpad(payload, flags);
    const stream = this.streams.get(id);
    if (!stream || stream.remoteEnded) {
      if (id > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      // A stream this side already finished or reset: the data is dropped, its window given back.
      this.creditConnection(flowLength);
      if (stream) this.resetStream(id, ErrorCode.STREAM_CLOSED);
      return;
    }
    stream.receiveWindow -= flowLength;
    if (stream.receiveWindow < 0) {
      this.creditConnection(flowLength);
      this.resetStream(id, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    // Padding is nobody's data: its window comes back at once.
    if (data.length < flowLength) this.consumed(stream, flowLength - data.length);
    if (data.length > 0) stream.receive(data);
    if (flags & Flag.END_STREAM) this.endRemote(stream);
  }

  private onHeaders(id: number, flags: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let block = unpad(payload, flags);
    if (flags & Flag.PRIORITY) {
      if (block.length < 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority fields');
      block = block.subarray(5);
    }
    const endHeaders = (flags & Flag.END_HEADERS) !== 0;
    // A block that waits for CONTINUATION outlives this socket read.
    const part = endHeaders ? block : Buffer.from(block);
    const pending = { stream: id, endStream: (flags & Flag.END_STREAM) !== 0, parts: [part], size: block.length };
    if (endHeaders) this.onHeaderBlock(pending);
    else this.pendingHeaders = pending;
  }

  private onContinuation(id: number, flags: number, payload: Buffer): void {
    const pending = this.pendingHeaders;
    if (!pending || pending.stream !== id) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'unexpected CONTINUATION');
    const endHeaders = (flags & Flag.END_HEADERS) !== 0;
    pending.parts.push(endHeaders ? payload : Buffer.from(payload));
    pending.size += payload.length;
    if (pending.size > MAX_HEADER_BLOCK) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large');
    if (endHeaders) {
      this.pendingHeaders = undefined;
      this.onHeaderBlock(pending);
    }
  }

  private onHeaderBlock(pending: PendingHeaders): void {
    let headers: HeaderMap;
    try {
      headers = this.decoder.decode(pending.parts.length === 1 ? pending.parts[0]! : Buffer.concat(pending.parts, pending.size));
    } catch (e) {
      if (e instanceof HpackError) throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, e.message);
      throw e;
    }
    const id = pending.stream;
    const existing = this.streams.get(id);
    if (existing) {
      // Trailers from the client: they must end its side.
      if (existing.remoteEnded) throw new ConnectionError(ErrorCode.STREAM_CLOSED, 'HEADERS after END_STREAM');
      if (!pending.endStream) this.resetStream(id, ErrorCode.PROTOCOL_ERROR);
      else this.endRemote(existing);
      return;
    }
    if (id <= this.lastStreamId) {
      // Late trailers on a stream this side cut short are dropped; any other id at or below the last one is closed (RFC 9113 §5.1.1).
      if (this.closedEarly.has(id)) return;
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on closed stream ${id} (streams up to ${this.lastStreamId} opened)`);
    }
    if (id % 2 === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'even stream id from a client');
    this.lastStreamId = id;
    if (this.goingAway) {
      this.resetStream(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    const stream = new ServerStream(id, headers, this.peerStreamWindow, this.settings.streamWindow, this);
    this.streams.add(stream);
    this.onStream(stream);
    if (pending.endStream && !stream.closed) this.endRemote(stream);
  }

  /** Forgets a stream either side reset: its call is told, and no frame of it goes out any more. */
  private dropStream(id: number): void {
    const stream = this.streams.get(id);
    if (!stream) return;
    this.streams.delete(stream);
    this.sending.delete(stream);
    stream.abort();
    this.endIfIdle();
  }

  private onSettings(id: number, flags: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length');
    for (let at = 0; at < payload.length; at += 6) {
      const setting = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (setting === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
        const delta = value - this.peerStreamWindow;
        this.peerStreamWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'stream window overflow');
        }
        if (delta > 0) for (const stream of this.streams.values()) if (stream.outgoing.length > 0) this.sending.add(stream);
      } else if (setting === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
        this.peerMaxFrame = value;
      } else if (setting === Setting.ENABLE_PUSH && value > 1) {
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH out of range');
      } else if (setting === Setting.HEADER_TABLE_SIZE) this.encoder.setPeerTableSize(value);
    }
    this.emit(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
    this.scheduleFlush();
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE length');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window overflow');
      for (const stream of this.streams.values()) if (stream.outgoing.length > 0) this.sending.add(stream);
      // Only for data the window held back: grpc-go sends one with its requests, and a flush for nothing would write a PING's ACK on its own.
      if (this.sending.size > 0) this.scheduleFlush();
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) {
      if (id > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return;
    }
    if (increment === 0) {
      this.resetStream(id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.resetStream(id, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    if (stream.outgoing.length > 0) this.wake(stream);
  }

  private endRemote(stream: ServerStream): void {
    stream.receiveEnd();
    if (stream.closed) this.removeStream(stream);
  }

  /** Window updates in quarter-window steps, not one per DATA frame. */
  private creditConnection(bytes: number): void {
    this.receiveCredit += bytes;
    if (this.receiveCredit >= this.settings.connectionWindow / 4) {
      this.emit(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, uint32(this.receiveCredit)));
      this.receiveWindow += this.receiveCredit;
      this.receiveCredit = 0;
    }
  }

  // ---- output

  /**
   * One header block: HEADERS, then CONTINUATION frames for what exceeds the
   * peer's frame size (a long grpc-message, say). Encoded as it is queued, so
   * that blocks reach the client's HPACK decoder in the order they were encoded.
   */
  private queueHeaderBlock(id: number, fields: readonly HeaderField[], endStream: boolean): void {
    const block = this.encoder.encode(fields);
    const end = endStream ? Flag.END_STREAM : 0;
    if (block.length <= this.peerMaxFrame) {
      this.queue(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | end, id, block));
      return;
    }
    for (let at = 0; at < block.length; at += this.peerMaxFrame) {
      const part = block.subarray(at, at + this.peerMaxFrame);
      const last = at + this.peerMaxFrame >= block.length ? Flag.END_HEADERS : 0;
      this.queue(at === 0 ? encodeFrame(FrameType.HEADERS, end, id, part) : encodeFrame(FrameType.CONTINUATION, last, id, part));
    }
  }

  /** Queues bytes for this turn's write. */
  private emit(bytes: Buffer): void {
    this.queue(bytes);
    this.scheduleFlush();
  }

  /**
   * Queues a frame nothing waits on (a PING's ACK) to go out with this turn's
   * responses, or at the end of this event-loop iteration if there are none:
   * grpc-go pings along with its requests, and an ACK written on its own is
   * one more write, and one more wake-up of the client.
   */
  private emitUnhurried(bytes: Buffer): void {
    this.queue(bytes);
    if (this.flushScheduled || this.unhurriedFlushScheduled || this.closed) return;
    this.unhurriedFlushScheduled = true;
    setImmediate(() => {
      this.unhurriedFlushScheduled = false;
      if (this.out.length > 0 && !this.flushScheduled) this.flush();
    });
  }

  /** Adds bytes to the output of a flush already under way or scheduled. */
  private queue(bytes: Buffer): void {
    this.out.push(bytes);
    this.outBytes += bytes.length;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    process.nextTick(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    if (!this.waitingForDrain) this.sending.forEach((stream) => this.pump(stream));
    if (this.out.length > 0) this.write();
    // Streams still in `sending` wait for the socket (those out of window left it, and come back with WINDOW_UPDATE).
    if (this.sending.size > 0 && !this.waitingForDrain) {
      if (this.socket.writableNeedDrain) {
        this.waitingForDrain = true;
        this.socket.once('drain', () => {
          this.waitingForDrain = false;
          this.scheduleFlush();
        });
      } else this.scheduleFlush();
    }
    if (this.goingAway) this.endIfIdle();
  }

  /** Writes this turn's output to the socket. */
  private write(): void {
    const out = this.out;
    const callbacks = this.outCallbacks;
    const done = callbacks.length === 0 ? undefined : () => callbacks.forEach((callback) => callback());
    if (out.length === 1) this.socket.write(out[0]!, done);
    else if (this.outBytes <= COALESCE_MAX) {
      const pooled = coalesceBuffers.take(this.outBytes);
      const joined = pooled ?? Buffer.allocUnsafe(this.outBytes);
      let at = 0;
      for (const bytes of out) {
        joined.set(bytes, at);
        at += bytes.length;
      }
      const written = pooled
        ? () => {
            coalesceBuffers.give(pooled);
            done?.();
          }
        : done;
      this.socket.write(joined.subarray(0, at), written);
    } else {
      this.socket.cork();
      for (let i = 0; i < out.length - 1; i++) this.socket.write(out[i]!);
      this.socket.write(out[out.length - 1]!, done);
      this.socket.uncork();
    }
    this.out = [];
    this.outBytes = 0;
    this.outCallbacks = [];
  }

  /** Moves a stream's response data into this turn's output, as far as windows and the socket allow. */
  private pump(stream: ServerStream): void {
    const outgoing = stream.outgoing;
    while (outgoing.length > 0) {
      const room = Math.min(this.sendWindow, stream.sendWindow, this.peerMaxFrame);
      if (room <= 0) {
        this.sending.delete(stream);
        return;
      }
      if (this.socket.writableLength + this.outBytes >= SOCKET_BUFFER) return;
      const item = outgoing[0]!;
      const length = Math.min(room, item.data.length - stream.sentOffset);
      const header = Buffer.allocUnsafe(FRAME_HEADER);
      writeFrameHeader(header, 0, length, FrameType.DATA, 0, stream.id);
      this.out.push(header, item.data.subarray(stream.sentOffset, stream.sentOffset + length));
      this.outBytes += FRAME_HEADER + length;
      this.sendWindow -= length;
      stream.sendWindow -= length;
      stream.sentOffset += length;
      if (stream.sentOffset === item.data.length) {
        outgoing.shift();
        stream.sentOffset = 0;
        if (item.callback) this.outCallbacks.push(item.callback);
      }
    }
    this.sending.delete(stream);
    if (stream.trailers) {
      this.queueHeaderBlock(stream.id, stream.trailers, true);
      stream.trailers = undefined;
      this.finishStream(stream);
    }
  }

  /** This side sent END_STREAM. A client still sending is told to stop (RST_STREAM NO_ERROR, as grpc-go does), after the trailers. */
  private finishStream(stream: ServerStream): void {
    stream.closed = true;
    this.sending.delete(stream);
    stream.dropHeld();
    if (!stream.remoteEnded) {
      this.emit(rstStream(stream.id, ErrorCode.NO_ERROR));
      this.rememberClosedEarly(stream.id);
      stream.remoteEnded = true;
    }
    this.removeStream(stream);
  }

  private removeStream(stream: ServerStream): void {
    this.streams.delete(stream);
    if (this.goingAway) this.endIfIdle();
  }

  private resetStream(id: number, code: ErrorCode): void {
    this.emit(rstStream(id, code));
    this.rememberClosedEarly(id);
    this.dropStream(id);
  }

  private rememberClosedEarly(id: number): void {
    this.closedEarly.add(id);
    if (this.closedEarly.size > CLOSED_EARLY_KEPT) this.closedEarly.delete(this.closedEarly.values().next().value!);
  }

  private endIfIdle(): void {
    if (!this.goingAway || this.streams.size > 0 || this.closed) return;
    // Frames of this turn (the last call's trailers) go out first: flush() comes back here.
    if (this.flushScheduled || this.out.length > 0) return;
    this.closed = true;
    this.socket.end();
  }

  private fail(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.emit(goAway(this.lastStreamId, code, message));
    this.flush();
    this.closed = true;
    this.socket.end();
    this.abortStreams();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.abortStreams();
  }

  private abortStreams(): void {
    const streams = this.streams.values();
    this.streams.clear();
    this.sending.clear();
    for (const stream of streams) stream.abort();
  }
}

function unpad(payload: Buffer, flags: number): Buffer {
  if (!(flags & Flag.PADDED)) return payload;
  if (payload.length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without its pad length');
  const pad = payload[0]!;
  if (pad >= payload.length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding longer than the frame');
  return payload.subarray(1, payload.length - pad);
}

function rstStream(id: number, code: ErrorCode): Buffer {
  return encodeFrame(FrameType.RST_STREAM, 0, id, uint32(code));
}

function goAway(lastStreamId: number, code: ErrorCode, debug = ''): Buffer {
  const payload = Buffer.alloc(8 + Buffer.byteLength(debug));
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  payload.write(debug, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
}
