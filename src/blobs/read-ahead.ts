/**
 * Large reads of a blob, read one piece ahead. containerd's content proxy
 * reads a blob as one Read RPC per ReadAt and sends each only once the last is
 * answered, so a read through libuv's thread pool (about 75 µs for 1 MiB from
 * the page cache here, against 20 µs to copy it) stood between every two
 * while the client was busy with the previous piece. After a read of a whole
 * piece that starts at the beginning or where an earlier read of the blob
 * ended, the next piece of the same length is read into a slot; the read that
 * asks for it waits for that read, if it is still running, and copies the
 * bytes out. A read elsewhere is not followed by one ahead, so random access
 * does not read everything twice.
 *
 * A few slots, each with a buffer it keeps, serve every file, so the memory
 * is bounded (slots × the largest piece) however many blobs are read, and two
 * readers of one blob at different places each keep a slot of their own.
 * Blobs never change once committed, so a piece read ahead is always right.
 */

/** A file that can be read ahead; the slots know it by identity. */
export interface ReadAheadFile {
  readonly size: number;
  /** Reads up to length bytes at position into buffer; returns bytes read. */
  readAt(buffer: Buffer, position: number, length: number): Promise<number>;
}

interface Slot {
  /** Whose piece the slot holds; undefined when free. */
  file: ReadAheadFile | undefined;
  position: number;
  length: number;
  buffer: Buffer;
  /** Bytes read, or -1 when the read failed (the reader then reads for itself and meets the error). */
  bytes: Promise<number>;
  settled: boolean;
  /** A reader is copying from it: not to be reused until it is done. */
  claimed: boolean;
  lastUsed: number;
}

/** Larger pieces are not read ahead: a slot's buffer grows to the largest piece it held. contentd reads at most 1 MiB per Read message. */
const MAX_PIECE = 1 << 20;

export interface ReadAheadOptions {
  /** Pieces held at once, across all files. */
  slots?: number;
}

export class ReadAhead {
  private readonly slots: Slot[] = [];
  /** Where recent reads ended, oldest first: a read starting at one of them continues a sequential reader. */
  private readonly ends: { file: ReadAheadFile; end: number }[] = [];
  private readonly capacity: number;
  private clock = 0;

  constructor(options: ReadAheadOptions = {}) {
    this.capacity = options.slots ?? 8;
  }

  /** Reads like file.readAt, from a piece read ahead when there is one, and reads the next piece ahead. */
  async read(file: ReadAheadFile, buffer: Buffer, position: number, length: number): Promise<number> {
    const want = Math.min(length, file.size - position);
    const sequential = this.takeEnd(file, position) || position === 0;
    const slot = this.slots.find((s) => s.file === file && s.position === position && s.length >= want && !s.claimed);
    if (!slot) {
      const n = await file.readAt(buffer, position, length);
      this.ended(file, position + n);
      if (n === length && sequential) this.readAhead(file, position + n, length);
      return n;
    }
    slot.claimed = true;
    this.ended(file, position + want);
    this.readAhead(file, position + length, length);
    try {
      const bytes = await slot.bytes;
      if (bytes < 0) return await file.readAt(buffer, position, length);
      return slot.buffer.copy(buffer, 0, 0, Math.min(bytes, length));
    } finally {
      slot.claimed = false;
      slot.file = undefined;
    }
  }

  /** Waits for the reads ahead of file to end and drops its pieces, so that its descriptor can be closed. */
  async forget(file: ReadAheadFile): Promise<void> {
    const held = this.slots.filter((s) => s.file === file);
    await Promise.all(held.map((s) => s.bytes));
    for (const s of held) if (s.file === file && !s.claimed) s.file = undefined;
    for (let i = this.ends.length - 1; i >= 0; i--) if (this.ends[i]!.file === file) this.ends.splice(i, 1);
  }

  /** Whether a recent read of file ended at position; that end is used up. */
  private takeEnd(file: ReadAheadFile, position: number): boolean {
    const i = this.ends.findIndex((e) => e.file === file && e.end === position);
    if (i >= 0) this.ends.splice(i, 1);
    return i >= 0;
  }

  private ended(file: ReadAheadFile, end: number): void {
    this.ends.push({ file, end });
    if (this.ends.length > 2 * this.capacity) this.ends.shift();
  }

  private readAhead(file: ReadAheadFile, position: number, length: number): void {
    if (length <= 0 || length > MAX_PIECE || position >= file.size) return;
    if (this.slots.some((s) => s.file === file && s.position === position)) return;
    const slot = this.freeSlot(length);
    if (!slot) return;
    const want = Math.min(length, file.size - position);
    Object.assign(slot, { file, position, length: want, settled: false, lastUsed: ++this.clock });
    slot.bytes = file.readAt(slot.buffer, position, want).catch(() => -1);
    void slot.bytes.then(() => (slot.settled = true));
  }

  /** A slot whose buffer no read is using: a free one, a new one while there is room, else the least recently filled. */
  private freeSlot(length: number): Slot | undefined {
    let slot = this.slots.find((s) => s.file === undefined && s.settled && !s.claimed);
    if (!slot && this.slots.length < this.capacity) {
      slot = { file: undefined, position: 0, length: 0, buffer: Buffer.allocUnsafe(0), bytes: Promise.resolve(0), settled: true, claimed: false, lastUsed: 0 };
      this.slots.push(slot);
    }
    if (!slot) {
      for (const s of this.slots) if (s.settled && !s.claimed && (!slot || s.lastUsed < slot.lastUsed)) slot = s;
    }
    if (slot && slot.buffer.length < length) slot.buffer = Buffer.allocUnsafe(length);
    return slot;
  }
}
