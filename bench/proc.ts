import { readFile, writeFile } from 'node:fs/promises';

/**
 * What the kernel knows about a target's process. Peak resident memory is
 * the high-water mark (VmHWM); writing 5 to clear_refs resets it, so each row
 * reports its own peak (where that is not permitted the peak covers the run
 * so far). CPU time (user + system) shows what a row cost the server even
 * when other work on the machine skews the wall clock.
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

/** CPU seconds (user + system) the process has used, its threads included. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime, in USER_HZ ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Drops the page cache's clean pages (after a sync, every page). On this
 * project's VM a new page-cache page costs ten times more when the guest's
 * free memory was not in use recently, as the host backs it lazily: `dd` of
 * 512 MiB into a new file runs at ~410 MB/s once a few GiB of new files have
 * been written, and at 4.6 GB/s right after the clean pages were dropped.
 * Without this, which store's ingest meets slow pages would depend on the
 * order of the rows. False where not permitted (not root).
 */
export async function dropCleanPages(): Promise<boolean> {
  return writeFile('/proc/sys/vm/drop_caches', '1').then(
    () => true,
    () => false,
  );
}
