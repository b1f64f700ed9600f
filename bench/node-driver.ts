import { BenchClient } from './client';
import { smallBlob, SyntheticBlob } from './data';
import type { BenchDriver } from './driver';
import { timed } from './timing';

/** The rows' loops on grpc-js in this process (`--client node`). */
export class NodeDriver implements BenchDriver {
  private readonly client: BenchClient;
  /** CPU spent generating data and digests: not the client's cost of talking to the store. */
  private prepareCpu = 0;

  constructor(address: string, namespace: string) {
    this.client = new BenchClient(address, namespace);
  }

  async ingest(ref: string, size: number, seed: number): Promise<{ digest: string; seconds: number }> {
    const blob = this.prepared(() => SyntheticBlob.of(size, seed));
    const seconds = await timed(() => this.client.ingest(ref, blob.size, blob.digest, blob.pages()));
    return { digest: blob.digest, seconds };
  }

  read(digest: string, size: number, chunk: number): Promise<number> {
    const buffer = Buffer.allocUnsafe(chunk);
    return timed(async () => {
      const reader = await this.client.readerAt(digest);
      for (let offset = 0; offset < reader.size; ) {
        const n = await reader.readAt(buffer.subarray(0, Math.min(chunk, reader.size - offset)), offset);
        if (n === 0) throw new Error(`short read of ${digest} at ${offset} (of ${size})`);
        offset += n;
      }
    });
  }

  async commitSmall(refPrefix: string, count: number, size: number, concurrency: number): Promise<{ digests: string[]; seconds: number }> {
    const blobs = this.prepared(() => Array.from({ length: count }, () => smallBlob(size)));
    const seconds = await timed(() => inParallel(blobs, concurrency, (blob, i) => this.client.ingest(`${refPrefix}-${i}`, blob.data.length, blob.digest, [blob.data])));
    return { digests: blobs.map((b) => b.digest), seconds };
  }

  info(digests: readonly string[], calls: number, concurrency: number): Promise<number> {
    const list = Array.from({ length: calls }, (_, i) => digests[i % digests.length]!);
    return timed(() => inParallel(list, concurrency, async (digest) => void (await this.client.info(digest))));
  }

  readSmall(digests: readonly string[], concurrency: number): Promise<number> {
    return timed(() =>
      inParallel(digests, concurrency, async (digest) => {
        const reader = await this.client.readerAt(digest);
        await reader.readAt(Buffer.allocUnsafe(reader.size), 0);
      }),
    );
  }

  async cpuSeconds(): Promise<number> {
    return processCpu() - this.prepareCpu;
  }

  private prepared<T>(make: () => T): T {
    const before = processCpu();
    const made = make();
    this.prepareCpu += processCpu() - before;
    return made;
  }

  close(): void {
    this.client.close();
  }
}

function processCpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Runs fn over items with at most limit calls in flight. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
