import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';

/** Path of the compiled CLI, from dist/test/support/. */
export const CLI = resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface TestServer {
  root: string;
  address: string;
  process: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  output(): string;
  /** SIGTERM (default) or SIGKILL; resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops and starts again on the same root and socket. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Stops and removes the root directory. */
  destroy(): Promise<void>;
}

/** What a server that crashed, or nearly did, leaves in its log. */
export const CRASH_IN_LOG = /Unhandled|uncaught|FATAL|heap out of memory/i;

/** For after(): the server is still running and logged no crash, then it goes. */
export async function destroySurvivor(server: TestServer): Promise<void> {
  try {
    assert.equal(server.process.exitCode, null, 'the server survived every test');
    assert.doesNotMatch(server.output(), CRASH_IN_LOG);
  } finally {
    await server.destroy();
  }
}

export interface ServerOptions {
  /** Reuse an existing root; a new temp dir otherwise. */
  root?: string;
  /** TOML text written to <root>/config.toml and passed with --config. */
  config?: string;
  args?: string[];
  /** Flags for node itself, before the CLI path (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

async function waitForSocket(path: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${output()}`);
    try {
      if ((await stat(path)).isSocket() && /serving/.test(output())) return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`server did not start: ${output()}`);
}

/** Starts `contentd serve` as a child process on a private root and socket. */
export async function startTestServer(options: ServerOptions = {}): Promise<TestServer> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'contentd-test-')));
  const address = join(root, 'contentd.sock');
  const args = [CLI, 'serve', '--root', root, '--address', address, ...(options.args ?? [])];
  if (options.config !== undefined) {
    const file = join(root, 'config.toml');
    await writeFile(file, options.config);
    args.splice(2, 0, '--config', file);
  }
  let log = '';
  let child!: ChildProcess;
  const launch = async (): Promise<void> => {
    log = '';
    child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } });
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitForSocket(address, child, () => log);
  };
  await launch();
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  };
  const server: TestServer = {
    root,
    address,
    get process() {
      return child;
    },
    output: () => log,
    stop,
    restart: async (signal) => {
      await stop(signal);
      await launch();
    },
    destroy: async () => {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
  };
  return server;
}
