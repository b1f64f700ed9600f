import { open } from 'node:fs/promises';

/**
 * Reads a file from start to end into one buffer, reused for every chunk:
 * a chunk is valid only until the next one is asked for. Streaming a large
 * file this way leaves no garbage behind it (node:fs streams allocate a new
 * buffer per chunk, which V8 collects only after tens of MiB have piled up).
 */
export async function* fileChunks(path: string, chunkSize = 1 << 20): AsyncGenerator<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(chunkSize);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, chunkSize, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}
