import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables';

/**
 * HPACK (RFC 7541): the decoder keeps the dynamic table the client's encoder
 * fills; the encoder only writes literals without indexing, so the client's
 * decoder never needs table state from this side.
 */

export class HpackError extends Error {}

/** Decoded request headers: a name seen more than once keeps every value, in order. */
export type HeaderMap = Record<string, string | string[]>;

/** The Huffman code as a binary tree in one array: node n's children are at 2n and 2n+1; a leaf holds -(byte + 1). */
const HUFFMAN_TREE = buildHuffmanTree();

function buildHuffmanTree(): Int32Array {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  for (let symbol = 0; symbol < 256; symbol++) {
    const code = HUFFMAN_CODES[symbol]!;
    let node = 0;
    for (let bit = HUFFMAN_LENGTHS[symbol]! - 1; bit >= 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (bit === 0) tree[slot] = -(symbol + 1);
      else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot]!;
      }
    }
  }
  return tree;
}

function huffmanDecode(bytes: Buffer, start: number, end: number): string {
  const out: number[] = [];
  let node = 0;
  // Bits since the last complete symbol, and whether they were all ones: only a short run of ones (EOS's prefix) may pad the end.
  let pending = 0;
  let allOnes = true;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >>> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + one]!;
      if (next < 0) {
        out.push(-next - 1);
        node = 0;
        pending = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = next;
        pending++;
        allOnes &&= one === 1;
      }
    }
  }
  if (pending > 7 || !allOnes) throw new HpackError('invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}

const HUFFMAN_CACHE_MAX_LENGTH = 128;
const HUFFMAN_CACHE_ENTRIES = 64;

const STATIC_ENTRIES = STATIC_TABLE.length;
/** RFC 7541 §4.1: each entry also costs 32 octets of overhead. */
const ENTRY_OVERHEAD = 32;

export class HeaderDecoder {
  /** Newest first, as HPACK indexes them. */
  private readonly table: [string, string][] = [];
  private size = 0;
  /** The size the encoder last chose (≤ maxTableSize). */
  private limit: number;
  private pos = 0;
  private block: Buffer = Buffer.alloc(0);
  /**
   * Node's client sends :path as a Huffman-coded literal on every call
   * (nghttp2 never indexes it): decoded once per connection instead.
   */
  private readonly huffmanCache = new Map<string, string>();

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE this side advertised. */
  constructor(private readonly maxTableSize = 4096) {
    this.limit = maxTableSize;
  }

  /** Decodes one complete header block; throws HpackError on a malformed one (a connection error: the table is then out of step). */
  decode(block: Buffer): HeaderMap {
    this.block = block;
    this.pos = 0;
    const headers: HeaderMap = {};
    let fields = 0;
    while (this.pos < block.length) {
      const first = block[this.pos]!;
      let name: string;
      let value: string;
      if (first & 0x80) {
        [name, value] = this.entry(this.integer(7));
      } else if (first & 0x40) {
        [name, value] = this.literal(6);
        this.insert(name, value);
      } else if (first & 0x20) {
        if (fields > 0) throw new HpackError('dynamic table size update after a header field');
        const size = this.integer(5);
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size ${size} above the advertised ${this.maxTableSize}`);
        this.limit = size;
        this.evict(0);
        continue;
      } else {
        [name, value] = this.literal(4);
      }
      fields++;
      const seen = headers[name];
      if (seen === undefined) headers[name] = value;
      else if (Array.isArray(seen)) seen.push(value);
      else headers[name] = [seen, value];
    }
    return headers;
  }

  private literal(prefix: number): [string, string] {
    const index = this.integer(prefix);
    const name = index === 0 ? this.string() : this.entry(index)[0];
    return [name, this.string()];
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('header index 0');
    if (index <= STATIC_ENTRIES) return STATIC_TABLE[index - 1]!;
    const entry = this.table[index - STATIC_ENTRIES - 1];
    if (!entry) throw new HpackError(`header index ${index} beyond the table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(size);
    // An entry larger than the whole table empties it and is not kept (§4.4).
    if (size <= this.limit) {
      this.table.unshift([name, value]);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.limit) {
      const [name, value] = this.table.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }

  private integer(prefix: number): number {
    const block = this.block;
    if (this.pos >= block.length) throw new HpackError('truncated integer');
    const max = (1 << prefix) - 1;
    let value = block[this.pos++]! & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= block.length) throw new HpackError('truncated integer');
      const byte = block[this.pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (value > 0xffffffff) throw new HpackError('integer overflow');
      if ((byte & 0x80) === 0) return value;
    }
  }

  private string(): string {
    const huffman = (this.block[this.pos]! & 0x80) !== 0;
    const length = this.integer(7);
    const start = this.pos;
    const end = start + length;
    if (end > this.block.length) throw new HpackError('truncated string');
    this.pos = end;
    if (!huffman) return this.block.toString('latin1', start, end);
    if (length > HUFFMAN_CACHE_MAX_LENGTH) return huffmanDecode(this.block, start, end);
    const coded = this.block.toString('latin1', start, end);
    let decoded = this.huffmanCache.get(coded);
    if (decoded === undefined) {
      decoded = huffmanDecode(this.block, start, end);
      if (this.huffmanCache.size >= HUFFMAN_CACHE_ENTRIES) this.huffmanCache.clear();
      this.huffmanCache.set(coded, decoded);
    }
    return decoded;
  }
}

/** Static-table indexes by name, for literals with an indexed name. */
const STATIC_NAMES = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAMES.has(name)) STATIC_NAMES.set(name, i + 1);
});

/** Encodes header fields as literals without indexing (names lower-case, values latin1). */
export function encodeHeaders(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: number[] = [];
  const pushInteger = (value: number, prefix: number, flags: number): void => {
    const max = (1 << prefix) - 1;
    if (value < max) {
      parts.push(flags | value);
      return;
    }
    parts.push(flags | max);
    let rest = value - max;
    while (rest >= 0x80) {
      parts.push((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    parts.push(rest);
  };
  const pushString = (text: string): void => {
    const bytes = Buffer.from(text, 'latin1');
    pushInteger(bytes.length, 7, 0);
    for (const byte of bytes) parts.push(byte);
  };
  for (const [name, value] of fields) {
    const index = STATIC_NAMES.get(name);
    if (index !== undefined) pushInteger(index, 4, 0);
    else {
      parts.push(0);
      pushString(name);
    }
    pushString(value);
  }
  return Buffer.from(parts);
}
