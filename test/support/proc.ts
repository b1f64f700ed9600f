// What a server process holds, from /proc: open file descriptors and
// resident memory, to check that hostile or heavy clients leave no leaks.
import { readdirSync, readFileSync } from 'node:fs';

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
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
