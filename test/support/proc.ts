// What a server process holds, from /proc: open file descriptors and
// resident memory, to check that hostile or heavy clients leave no leaks.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Where each open descriptor points (a path, socket:[…], pipe:[…]). */
function fdTargets(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return ''; // closed while listing
    }
  });
}

const BLOB_FILE = /\/blobs\/[^/]+\/[^/]+$/;

/**
 * Open descriptors but read handles of committed blobs: the local backend
 * keeps up to CACHED_BLOB_HANDLES of those open for a while after use (see
 * src/blobs/handle-cache.ts), which is a bound, not a leak.
 */
export function openFds(pid: number): number {
  return fdTargets(pid).filter((target) => !BLOB_FILE.test(target)).length;
}

export const CACHED_BLOB_HANDLES = 128;

/** Open read handles of committed blobs. */
export function blobHandles(pid: number): number {
  return fdTargets(pid).filter((target) => BLOB_FILE.test(target)).length;
}

/** Resident set size in MiB. */
export function rssMiB(pid: number): number {
  const kib = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) / 1024;
}

/** Polls fn until ok(value) holds or timeoutMs pass; returns the last value seen. */
export async function settle<T>(fn: () => T | Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await fn();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await fn();
  }
  return value;
}
