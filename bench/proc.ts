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
