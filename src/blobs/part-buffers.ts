/**
 * Buffers for the parts of multipart uploads, reused while uploads run: a
 * part's buffer comes back once its upload has settled, so a large blob
 * costs a few part buffers rather than one per part (which V8 would collect
 * only after tens of MiB had piled up). The free ones are let go when no
 * upload is running: an idle server holds none.
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  private uploads = 0;

  /** size: the part length worth reusing (a blob's last, shorter part is not). */
  constructor(private readonly size: number) {}

  /** An upload starts taking parts; end() when it has finished, however it ended. */
  begin(): void {
    this.uploads++;
  }

  end(): void {
    if (--this.uploads === 0) this.free.length = 0;
  }

  take(length: number): Buffer {
    const reused = length === this.size ? this.free.pop() : undefined;
    return reused ?? Buffer.allocUnsafe(length);
  }

  /** Hands back a part whose upload has settled: nothing may use it afterwards. */
  give(buffer: Buffer): void {
    if (buffer.length === this.size && this.uploads > 0) this.free.push(buffer);
  }
}
