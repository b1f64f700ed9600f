import { readFile, writeFile } from 'node:fs/promises';

/**
 * Peak resident memory of a process, from the kernel's high-water mark
 * (VmHWM). Writing 5 to clear_refs resets the mark, so each row reports its
 * own peak; where that is not permitted the peak covers the run so far.
 */

export async function resetPeakRss(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
}

/** Peak RSS in bytes since the last reset. */
export async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
