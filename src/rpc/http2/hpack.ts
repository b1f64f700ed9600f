import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables';

/**
 * HPACK (RFC 7541): the decoder keeps the dynamic table the client's encoder
 * fills; the encoder indexes only the few fields every response repeats.
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

/** A header field to send: name (lower-case) and value (latin1). */
export type HeaderField = readonly [name: string, value: string];

/** Static-table indexes by name, for literals with an indexed name. */
const STATIC_NAMES = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAMES.has(name)) STATIC_NAMES.set(name, i + 1);
});

/** The table size HPACK starts with (RFC 7541 §4.2), and the most this encoder uses. */
const DEFAULT_TABLE_SIZE = 4096;

/**
 * The HPACK encoder of one connection. The fields a server repeats on every
 * response (given once: content-type, grpc-status 0, …) go into the peer's
 * dynamic table the first time they are sent and are one-byte indexes after,
 * which saves the client decoding them on every call; anything else is a
 * literal without indexing. The repeated set is small and fixed, so entries
 * are never evicted and their indexes follow from the order they went in.
 */
export class HeaderEncoder {
  /** Repeated fields that are entries of the static table: always indexed. */
  private readonly staticIndexes = new Map<HeaderField, number>();
  /** Repeated fields in the peer's dynamic table, with the order they went in. */
  private readonly inserted = new Map<HeaderField, number>();
  private used = 0;
  /** The dynamic table size in force: the peer's limit, at most the default. */
  private maxSize = DEFAULT_TABLE_SIZE;
  /** The smallest size the peer set since the last block, still to be signalled. */
  private pendingMin: number | undefined;

  constructor(private readonly repeated: ReadonlySet<HeaderField> = new Set()) {
    for (const field of repeated) {
      const index = STATIC_TABLE.findIndex(([name, value]) => name === field[0] && value === field[1]);
      if (index >= 0) this.staticIndexes.set(field, index + 1);
    }
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE. */
  setPeerTableSize(size: number): void {
    const next = Math.min(size, DEFAULT_TABLE_SIZE);
    if (next === this.maxSize) return;
    this.pendingMin = Math.min(this.pendingMin ?? next, next);
    this.maxSize = next;
  }

  /** One header block; blocks must go on the wire in the order they were encoded. */
  encode(fields: readonly HeaderField[]): Buffer {
    const out: number[] = [];
    if (this.pendingMin !== undefined) {
      // RFC 7541 §4.2: a changed limit is signalled at the start of the next block, the smallest first;
      // an update to 0 empties the table when the entries no longer fit (no partial eviction to track).
      const smallest = this.pendingMin < this.used ? 0 : this.pendingMin;
      if (smallest === 0) {
        this.inserted.clear();
        this.used = 0;
      }
      if (smallest < this.maxSize) pushInteger(out, smallest, 5, 0x20);
      pushInteger(out, this.maxSize, 5, 0x20);
      this.pendingMin = undefined;
    }
    for (const field of fields) {
      const staticIndex = this.staticIndexes.get(field);
      if (staticIndex !== undefined) {
        pushInteger(out, staticIndex, 7, 0x80);
        continue;
      }
      const order = this.inserted.get(field);
      if (order !== undefined) {
        // The newest entry is index 62 (RFC 7541 §2.3.3).
        pushInteger(out, STATIC_ENTRIES + this.inserted.size - order, 7, 0x80);
        continue;
      }
      const [name, value] = field;
      const size = ENTRY_OVERHEAD + name.length + value.length;
      if (this.repeated.has(field) && this.used + size <= this.maxSize) {
        this.inserted.set(field, this.inserted.size);
        this.used += size;
        pushLiteral(out, name, value, 6, 0x40);
      } else pushLiteral(out, name, value, 4, 0);
    }
    return Buffer.from(out);
  }
}

function pushInteger(out: number[], value: number, prefix: number, flags: number): void {
  const max = (1 << prefix) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function pushString(out: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  pushInteger(out, bytes.length, 7, 0);
  for (const byte of bytes) out.push(byte);
}

/** A literal field (with incremental indexing: prefix 6, flags 0x40; without: prefix 4, flags 0), its name from the static table where it is there. */
function pushLiteral(out: number[], name: string, value: string, prefix: number, flags: number): void {
  const index = STATIC_NAMES.get(name);
  if (index !== undefined) pushInteger(out, index, prefix, flags);
  else {
    out.push(flags);
    pushString(out, name);
  }
  pushString(out, value);
}
