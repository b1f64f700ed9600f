import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';

/**
 * strace is how tests see what a SIGKILL or a client cannot: fsync order,
 * write boundaries. CI installs it and must not run without it; elsewhere its
 * absence skips those tests (the reason is returned for `skip`).
 */
export function straceSkip(suite: string): string | false {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (!probe.error && probe.status === 0) return false;
  const missing = 'strace is not installed (apt-get install strace)';
  if (process.env.CI === 'true') throw new Error(`${suite}: ${missing} (required when CI=true)`);
  return missing;
}

/** strace -f attached to a running process, its output in a file. */
export class Strace {
  private stderr = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly file: string,
  ) {
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /**
   * Attaches with the given options (-e ...). strace prints nothing once
   * attached: probe() makes the process do a system call until one shows.
   */
  static async attach(pid: number, file: string, options: string[], probe: () => Promise<unknown>): Promise<Strace> {
    const child = spawn('strace', ['-f', '-qq', '-yy', '-p', String(pid), '-o', file, ...options], { stdio: ['ignore', 'ignore', 'pipe'] });
    const trace = new Strace(child, file);
    for (let i = 0; i < 100 && !(await readFile(file, 'utf8').catch(() => '')).includes('('); i++) {
      await probe();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return trace;
  }

  /** Detaches; the trace's lines (the file is removed), and what strace said on stderr. */
  async stop(): Promise<{ lines: string[]; stderr: string }> {
    const exited = once(this.child, 'exit');
    this.child.kill('SIGINT');
    await exited;
    const lines = (await readFile(this.file, 'utf8')).split('\n');
    await rm(this.file, { force: true });
    return { lines, stderr: this.stderr };
  }
}

/**
 * The bytes of each write(2)/writev(2) to a unix socket in a trace taken
 * with -xx -s <large> (every byte printed as \xHH), in order. A write another
 * thread's call interrupts still has its bytes on its first line.
 */
export function socketWrites(lines: readonly string[]): Buffer[] {
  const writes: Buffer[] = [];
  for (const line of lines) {
    // After the descriptor, whose socket path -yy prints (in hex too).
    const args = /\bwritev?\(\d+<UNIX-STREAM:\[[^\]]*\]>, (.*)$/.exec(line)?.[1];
    if (args === undefined) continue;
    const hex = [...args.matchAll(/"((?:\\x[0-9a-f]{2})*)"/g)].map((quoted) => quoted[1]!.replace(/\\x/g, '')).join('');
    writes.push(Buffer.from(hex, 'hex'));
  }
  return writes;
}
