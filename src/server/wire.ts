import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  ContentService,
  InfoResponse,
  ListContentResponse,
  ListStatusesResponse,
  ReadContentResponse,
  StatusResponse,
  UpdateResponse,
  WriteContentRequest,
  WriteContentResponse,
} from '../../generated/containerd/services/content/v1/content';
import { BufferPool } from '../rpc/buffer-pool';
import { allocFramable, PREFIX_LENGTH } from '../rpc/framing';

/**
 * Hand-made wire encoding on the two byte-heavy paths, to spare copies (and
 * the garbage they make) between the protobuf buffers and the file: a Read
 * response is allocated in wire form, with room for the gRPC frame prefix,
 * and the file is read straight into its data field; a Write request's data
 * is a view of the received message. The
 * generated codecs do the rest, so the messages are the same on the wire.
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

/** The Content service definition with the hand-made codecs in place of the generated ones. */
export const CONTENT_DEFINITION: typeof ContentService = {
  ...ContentService,
  info: { ...ContentService.info, responseSerialize: serializer(InfoResponse) },
  update: { ...ContentService.update, responseSerialize: serializer(UpdateResponse) },
  list: { ...ContentService.list, responseSerialize: serializer(ListContentResponse) },
  read: {
    ...ContentService.read,
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
