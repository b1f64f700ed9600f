/**
 * Large message buffers, by power-of-two size class, reused instead of
 * freshly allocated per message: at 1 MiB per message, allocation and the
 * garbage collection it triggers cost more CPU than the bytes' other work
 * (reading 1 MiB chunks: 3.2 → 1.2 ms of server CPU per chunk). Whoever
 * takes a buffer gives it back only once nothing can read or write it any
 * more; a buffer never given back is simply collected.
 */
export class BufferPool {
  /** Smaller buffers come from Node's own pool (Buffer.allocUnsafe below half its 8 KiB slab). */
  static readonly MIN_SIZE = 4 << 10;
  /** Bounds what a pool keeps: FREE_PER_CLASS buffers of each class up to 4 MiB, under 64 MiB (a Read pool, whose classes stop at 1 MiB, under 16 MiB). */
  private static readonly MAX_CLASS = 4 << 20;
  private static readonly FREE_PER_CLASS = 8;
  private readonly free = new Map<number, Buffer[]>();

  /** @param slack bytes added to every buffer beyond its class (room for headers) */
  constructor(private readonly slack = 0) {}

  /** A buffer of at least size bytes, or undefined when size is outside the pooled range. */
  take(size: number): Buffer | undefined {
    if (size < BufferPool.MIN_SIZE) return undefined;
    const sizeClass = 2 ** Math.ceil(Math.log2(size));
    if (sizeClass > BufferPool.MAX_CLASS) return undefined;
    return this.free.get(sizeClass)?.pop() ?? Buffer.allocUnsafeSlow(sizeClass + this.slack);
  }

  give(buffer: Buffer): void {
    const sizeClass = buffer.length - this.slack;
    let list = this.free.get(sizeClass);
    if (!list) this.free.set(sizeClass, (list = []));
    if (list.length < BufferPool.FREE_PER_CLASS) list.push(buffer);
  }
}
