import type { Metadata } from '@grpc/grpc-js';
import { WriteAction, type ContentClient, type ReadContentResponse } from '../generated/containerd/services/content/v1/content';
import { contentClient, info, md, WriteSession } from '../test/support/client';
import { GC_ROOT_LABELS } from './driver';

/**
 * The grpc-js client of `--client node` (node-driver.ts): it talks the way
 * containerd's content proxy does (content/proxy), so a row measures what
 * containerd would see. Only the socket differs between targets.
 */

/**
 * grpc-go, containerd's client, grows its receive windows up to 16 MiB (BDP
 * estimation); grpc-js keeps HTTP/2's 64 KiB unless told, which would make
 * every 1 MiB response wait for 16 window updates.
 */
const FLOW_CONTROL_WINDOW = 16 << 20;

export interface BlobReaderAt {
  readonly size: number;
  /** Fills buffer from offset with one Read RPC, as containerd's remoteReaderAt.ReadAt does. */
  readAt(buffer: Buffer, offset: number): Promise<number>;
}

export class BenchClient {
  private readonly client: ContentClient;
  private readonly metadata: Metadata;

  constructor(address: string, namespace: string) {
    this.client = contentClient(address, { 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW });
    this.metadata = md(namespace);
  }

  close(): void {
    this.client.close();
  }

  /**
   * One Write stream: STAT declaring ref, size and digest, a WRITE per chunk
   * (each waits for its response, like containerd's remoteWriter), COMMIT.
   */
  async ingest(ref: string, size: number, digest: string, chunks: Iterable<Buffer>): Promise<void> {
    const session = new WriteSession(this.client, this.metadata);
    try {
      await session.send({ action: WriteAction.STAT, ref, total: size, expected: digest });
      let offset = 0;
      for (const data of chunks) {
        const res = await session.send({ action: WriteAction.WRITE, offset, data });
        offset = res.offset;
      }
      const res = await session.send({ action: WriteAction.COMMIT, offset, total: size, expected: digest, labels: GC_ROOT_LABELS });
      if (res.digest !== digest || res.offset !== size) throw new Error(`commit of ${ref} returned ${res.digest} (${res.offset} bytes), expected ${digest} (${size} bytes)`);
      await session.close();
    } catch (e) {
      session.cancel();
      throw e;
    }
  }

  async info(digest: string): Promise<{ size: number }> {
    return info(this.client, digest, this.metadata);
  }

  /** Like containerd's proxy ReaderAt: an Info first, then a Read stream per readAt. */
  async readerAt(digest: string): Promise<BlobReaderAt> {
    const { size } = await this.info(digest);
    return { size, readAt: (buffer, offset) => this.readInto(digest, buffer, offset) };
  }

  private readInto(digest: string, buffer: Buffer, offset: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.client.read({ digest, offset, size: buffer.length }, this.metadata);
      let filled = 0;
      stream.on('data', (m: ReadContentResponse) => {
        filled += m.data.copy(buffer, filled);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(filled));
    });
  }
}
