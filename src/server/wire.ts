import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  ContentService,
  InfoRequest,
  InfoResponse,
  ListContentResponse,
  ListStatusesResponse,
  ReadContentRequest,
  ReadContentResponse,
  StatusResponse,
  UpdateResponse,
  WriteContentRequest,
  WriteContentResponse,
} from '../../generated/containerd/services/content/v1/content';
import type { Timestamp } from '../../generated/google/protobuf/timestamp';
import { BufferPool } from '../rpc/buffer-pool';
import { allocFramable, PREFIX_LENGTH } from '../rpc/framing';

/**
 * Hand-made wire encoding where the generated codecs cost most. On the two
 * byte-heavy paths, to spare copies (and the garbage they make) between the
 * protobuf buffers and the file: a Read response is allocated in wire form,
 * with room for the gRPC frame prefix, and the file is read straight into
 * its data field; a Write request's data is a view of the received message.
 * On the two most frequent calls (containerd sends an Info before every
 * ReaderAt and a Read per ReadAt): Info responses, and Info and Read
 * requests. The generated codecs do the rest and every unusual message, so
 * the messages are the same on the wire (the wire test compares them).
 */

/** ReadContentResponse field tags: offset (1, varint), data (2, length-delimited). */
const READ_OFFSET_TAG = 0x08;
const READ_DATA_TAG = 0x12;
/** WriteContentRequest.data is field 6. */
const WRITE_DATA_FIELD = 6;

/** Where a ReadContentResponse keeps its own wire form (the generated encoder ignores it). */
const WIRE = Symbol('wire');

type ReadResponse = ReadContentResponse & { [WIRE]?: Buffer };

/** Frame prefix plus the offset and data field headers. */
const READ_HEADERS_MAX = PREFIX_LENGTH + 2 * 11;
/** Read responses' buffers: the read loop gives one back once the transport has sent it. */
const readBuffers = new BufferPool(READ_HEADERS_MAX);

export interface ReadResponseBuffer {
  /** Where the file's bytes go. */
  data: Buffer;
  /** The response carrying the first n bytes of data. */
  done(n: number): ReadContentResponse;
  /** Gives the buffer back for reuse: only once the transport has sent the response, or it was never sent. */
  release(): void;
}

/**
 * A response for length bytes at offset: fill data, then call done(n) with
 * the bytes actually read. The message is an ordinary ReadContentResponse
 * whose data is a view of its own wire form; a short read (the end of a
 * file) carries no wire form and goes through the generated encoder.
 */
export function allocReadResponse(offset: number, length: number): ReadResponseBuffer {
  const header = offset > 0 ? 1 + varintSize(offset) : 0;
  const prefix = header + 1 + varintSize(length);
  const backing = readBuffers.take(length);
  const bytes = allocFramable(prefix + length, backing);
  let at = 0;
  if (offset > 0) {
    bytes[at++] = READ_OFFSET_TAG;
    at = writeVarint(bytes, at, offset);
  }
  bytes[at++] = READ_DATA_TAG;
  writeVarint(bytes, at, length);
  const data = bytes.subarray(prefix);
  return {
    data,
    done: (n): ReadResponse => (n === length ? { offset, data, [WIRE]: bytes } : { offset, data: data.subarray(0, n) }),
    release: () => backing && readBuffers.give(backing),
  };
}

/** Read request field tags: digest (1, length-delimited), offset and size (2, 3, varints). */
const TAG_REQUEST_DIGEST = 0x0a;
const TAG_REQUEST_OFFSET = 0x10;
const TAG_REQUEST_SIZE = 0x18;
/** Varints up to this many bytes (2^49) are read here; longer ones (negative, huge) go to the generated decoder. */
const SHORT_VARINT_BYTES = 7;

/**
 * The digest, offset and size of an Info or Read request, decoded by hand
 * when the request holds only those fields, an ASCII digest and
 * non-negative offsets below 2^49 (what every client sends); undefined
 * otherwise, for the generated decoder. containerd sends one Info before
 * every ReaderAt and one Read per ReadAt, and the generated decoder's reader,
 * DataView and TextDecoder cost more than the lookup behind them.
 */
function decodeDigestRequest(bytes: Buffer): ReadContentRequest | undefined {
  const message = { digest: '', offset: 0, size: 0 };
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at++];
    if (tag === TAG_REQUEST_DIGEST) {
      if (at >= bytes.length) return undefined;
      const length = bytes[at++]!;
      if (length >= 0x80 || at + length > bytes.length) return undefined;
      for (let i = at; i < at + length; i++) if (bytes[i]! >= 0x80) return undefined;
      message.digest = bytes.toString('latin1', at, at + length);
      at += length;
    } else if (tag === TAG_REQUEST_OFFSET || tag === TAG_REQUEST_SIZE) {
      let value = 0;
      let scale = 1;
      for (let i = 0; ; i++) {
        if (i === SHORT_VARINT_BYTES || at >= bytes.length) return undefined;
        const byte = bytes[at++]!;
        value += (byte & 0x7f) * scale;
        scale *= 0x80;
        if (byte < 0x80) break;
      }
      if (tag === TAG_REQUEST_OFFSET) message.offset = value;
      else message.size = value;
    } else return undefined;
  }
  return message;
}

/** InfoRequest has only the digest: offset and size would be unknown fields, which the generated decoder skips too. */
function decodeInfoRequest(bytes: Buffer): InfoRequest {
  const fast = decodeDigestRequest(bytes);
  return fast ? { digest: fast.digest } : InfoRequest.decode(bytes);
}

function decodeReadRequest(bytes: Buffer): ReadContentRequest {
  return decodeDigestRequest(bytes) ?? ReadContentRequest.decode(bytes);
}

/** Decodes a WriteContentRequest whose data is a view of bytes, not a copy. */
export function decodeWriteRequest(bytes: Buffer): WriteContentRequest {
  const reader = new BinaryReader(bytes);
  let data: Uint8Array | undefined;
  const rest: Buffer[] = [];
  let restStart = 0;
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [field, wireType] = reader.tag();
    if (field === WRITE_DATA_FIELD && wireType === WireType.LengthDelimited) {
      // Repeated occurrences: the last one wins, as in the generated decoder.
      data = reader.bytes();
      rest.push(bytes.subarray(restStart, start));
      restStart = reader.pos;
    } else {
      reader.skip(wireType, field);
    }
  }
  if (!data) return WriteContentRequest.decode(bytes);
  rest.push(bytes.subarray(restStart));
  const message = WriteContentRequest.decode(Buffer.concat(rest));
  message.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return message;
}

/**
 * One writer for every response: the generated serializers make a new one
 * per message (a 128-byte buffer, grown by doubling) and copy its bytes twice
 * (finish()'s slice, then Buffer.from). Encoding is synchronous, so no two
 * responses ever share it.
 */
const writer = new BinaryWriter();

function serializer<T>(type: { encode(message: T, writer: BinaryWriter): BinaryWriter }): (message: T) => Buffer {
  return (message) => {
    let bytes: Uint8Array;
    try {
      bytes = type.encode(message, writer).finish();
    } catch (e) {
      // finish() resets the writer, so a message that failed half-way leaves nothing behind for the next.
      writer.finish();
      throw e;
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** A short read's response, which is not in wire form (see allocReadResponse). */
const serializeRead = serializer(ReadContentResponse);

const serializeInfoGeneric = serializer(InfoResponse);

/** Field tags: InfoResponse.info (1), Info's digest, size, created_at, updated_at, labels (1–5); a label's key and value (1, 2); Timestamp's seconds and nanos (1, 2). */
const TAG_INFO = 0x0a;
const TAG_DIGEST = 0x0a;
const TAG_SIZE = 0x10;
const TAG_CREATED = 0x1a;
const TAG_UPDATED = 0x22;
const TAG_LABEL = 0x2a;
const TAG_KEY = 0x0a;
const TAG_VALUE = 0x12;
const TAG_SECONDS = 0x08;
const TAG_NANOS = 0x10;

/** A number the fast encoder writes as a varint; anything else (negative, fractional, huge) goes to the generated one. */
const isVarint = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

function timestampSize(t: Timestamp): number {
  return (t.seconds !== 0 ? 1 + varintSize(t.seconds) : 0) + (t.nanos !== 0 ? 1 + varintSize(t.nanos) : 0);
}

/** UTF-8 length: counted in JS for ASCII (digests, most labels), which is cheaper than the call into Buffer.byteLength. */
function utf8Length(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return Buffer.byteLength(text);
  return text.length;
}

function stringField(bytes: number): number {
  return 1 + varintSize(bytes) + bytes;
}

/**
 * An Info response straight into a framable buffer of its exact size: Info
 * is the RPC containerd sends before every ReaderAt, and the generated
 * encoder's forks, joins and copies cost more than the lookup behind it.
 * Same bytes as the generated encoder (wire test).
 */
function serializeInfo(message: InfoResponse): Buffer {
  const info = message.info;
  if (info === undefined) return serializeInfoGeneric(message);
  const { digest, createdAt, updatedAt, labels } = info;
  if (!isVarint(info.size) || !timestampFits(createdAt) || !timestampFits(updatedAt)) return serializeInfoGeneric(message);
  const digestBytes = utf8Length(digest);
  let size = digest !== '' ? stringField(digestBytes) : 0;
  if (info.size !== 0) size += 1 + varintSize(info.size);
  if (createdAt !== undefined) size += timestampField(createdAt);
  if (updatedAt !== undefined) size += timestampField(updatedAt);
  for (const key in labels) {
    const entry = labelSize(key, labels[key]!);
    size += 1 + varintSize(entry) + entry;
  }
  const out = allocFramable(1 + varintSize(size) + size);
  out[0] = TAG_INFO;
  let at = writeVarint(out, 1, size);
  if (digest !== '') at = writeString(out, at, TAG_DIGEST, digest, digestBytes);
  if (info.size !== 0) {
    out[at++] = TAG_SIZE;
    at = writeVarint(out, at, info.size);
  }
  if (createdAt !== undefined) at = writeTimestamp(out, at, TAG_CREATED, createdAt);
  if (updatedAt !== undefined) at = writeTimestamp(out, at, TAG_UPDATED, updatedAt);
  for (const key in labels) {
    const value = labels[key]!;
    out[at++] = TAG_LABEL;
    at = writeVarint(out, at, labelSize(key, value));
    if (key !== '') at = writeString(out, at, TAG_KEY, key, utf8Length(key));
    if (value !== '') at = writeString(out, at, TAG_VALUE, value, utf8Length(value));
  }
  return out;
}

/** A label map entry's bytes: key and value fields, each left out when empty. */
function labelSize(key: string, value: string): number {
  return (key !== '' ? stringField(utf8Length(key)) : 0) + (value !== '' ? stringField(utf8Length(value)) : 0);
}

function timestampField(t: Timestamp): number {
  const inner = timestampSize(t);
  return 1 + varintSize(inner) + inner;
}

function timestampFits(t: Timestamp | undefined): boolean {
  return t === undefined || (isVarint(t.seconds) && isVarint(t.nanos) && t.nanos <= 0x7fffffff);
}

function writeTimestamp(out: Buffer, at: number, tag: number, t: Timestamp): number {
  out[at++] = tag;
  at = writeVarint(out, at, timestampSize(t));
  if (t.seconds !== 0) {
    out[at++] = TAG_SECONDS;
    at = writeVarint(out, at, t.seconds);
  }
  if (t.nanos !== 0) {
    out[at++] = TAG_NANOS;
    at = writeVarint(out, at, t.nanos);
  }
  return at;
}

function writeString(out: Buffer, at: number, tag: number, text: string, bytes: number): number {
  out[at++] = tag;
  at = writeVarint(out, at, bytes);
  // ASCII (digests, most label keys) byte by byte: cheaper than a call into the UTF-8 encoder for short strings.
  if (bytes !== text.length) return at + out.write(text, at, bytes, 'utf8');
  for (let i = 0; i < bytes; i++) out[at + i] = text.charCodeAt(i);
  return at + bytes;
}

/** The Content service definition with the hand-made codecs in place of the generated ones. */
export const CONTENT_DEFINITION: typeof ContentService = {
  ...ContentService,
  info: { ...ContentService.info, requestDeserialize: decodeInfoRequest, responseSerialize: serializeInfo },
  update: { ...ContentService.update, responseSerialize: serializer(UpdateResponse) },
  list: { ...ContentService.list, responseSerialize: serializer(ListContentResponse) },
  read: {
    ...ContentService.read,
    requestDeserialize: decodeReadRequest,
    responseSerialize: (message: ReadResponse): Buffer => message[WIRE] ?? serializeRead(message),
  },
  status: { ...ContentService.status, responseSerialize: serializer(StatusResponse) },
  listStatuses: { ...ContentService.listStatuses, responseSerialize: serializer(ListStatusesResponse) },
  write: { ...ContentService.write, requestDeserialize: decodeWriteRequest, responseSerialize: serializer(WriteContentResponse) },
};

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Writes a non-negative integer below 2^53 as a varint; returns the position after it. */
function writeVarint(buffer: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    buffer[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  buffer[at++] = value;
  return at;
}
