// Child processes for tests: one-shot commands with captured output, and
// long-running daemons (containerd, docker-registry) with a log file and a
// readiness check. Daemons still running when the test process exits are
// killed, so a crashed test leaves nothing behind.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes, for binary output. */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Killed with SIGKILL after this long. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: Buffer | string;
  /** An open file descriptor to use as stdin instead (a regular file is seekable, a pipe is not). */
  stdinFd?: number;
}

/** Runs a command to completion; never rejects for a non-zero exit (check code). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdin: StdioOptions = [options.stdinFd ?? (options.input === undefined ? 'ignore' : 'pipe'), 'pipe', 'pipe'];
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: stdin });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => stdout.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(stdout);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
    });
  });
}

/** Like run(), but a non-zero exit rejects with the command's output. */
export async function runOk(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  const res = await run(command, args, options);
  if (res.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${res.code ?? res.signal}\nstdout: ${res.stdout.slice(-4000)}\nstderr: ${res.stderr.slice(-4000)}`);
  }
  return res.stdout;
}

export interface Daemon {
  readonly process: ChildProcess;
  /** Everything the daemon wrote to stdout and stderr (the last 1 MiB; the log file has it all). */
  log(): string;
  /** SIGTERM, then SIGKILL after timeoutMs; resolves once the process has exited. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface DaemonOptions {
  /** Receives stdout and stderr. */
  logFile: string;
  /** Polled until true; receives the output so far. */
  ready: (log: string) => boolean | Promise<boolean>;
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startDaemon(command: string, args: string[], options: DaemonOptions): Promise<Daemon> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env });
  live.add(child);
  const file = createWriteStream(options.logFile, { flags: 'a' });
  let output = '';
  const keep = (d: Buffer): void => {
    file.write(d);
    output = (output + d.toString()).slice(-(1 << 20));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));
  const exited = new Promise<void>((resolve) =>
    child.on('close', () => {
      live.delete(child);
      file.end();
      resolve();
    }),
  );
  const running = (): boolean => child.exitCode === null && child.signalCode === null && !spawnError;

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  while (!(await options.ready(output))) {
    if (!running()) throw new Error(`${command} exited before it was ready (${spawnError?.message ?? child.exitCode ?? child.signalCode}):\n${output.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${command} not ready within ${options.readyTimeoutMs ?? 30_000} ms:\n${output.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    process: child,
    log: () => output,
    stop: async (timeoutMs = 10_000) => {
      if (running()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await exited;
    },
  };
}

/** Polls fn until it returns a value other than undefined; fails with describe() after timeoutMs. */
export async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs: number, describe: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once child has exited (immediately if it already has), to its exit code or signal. */
export async function exitOf(child: ChildProcess): Promise<number | NodeJS.Signals> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  return child.exitCode ?? child.signalCode!;
}
