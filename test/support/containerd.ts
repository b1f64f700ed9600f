// A private containerd for tests: its own root, state, sockets and log under
// one directory, nothing shared with a system containerd. With a content
// proxy snippet (the output of `contentd containerd-config`) its built-in
// content store is disabled and contentd serves its content.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { run, runOk, startDaemon, type Daemon, type RunOptions, type RunResult } from './process';
import { CLI, type TestServer } from './server';

export const CONTAINERD_BIN = process.env.CONTAINERD_BIN ?? 'containerd';
export const CTR_BIN = process.env.CTR_BIN ?? 'ctr';

/** Plugins that cannot work or matter here (CRI is also the slowest to start). */
const UNUSED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
];

export interface ContainerdOptions {
  /** Holds root/, state/, the sockets, config.toml and containerd.log; reuse it to restart on the same data. */
  dir: string;
  /** TOML from `contentd containerd-config`, imported by the generated config as is; without it containerd keeps its own content store. */
  contentProxy?: string;
}

export interface Containerd {
  readonly dir: string;
  /** containerd's gRPC socket. */
  readonly address: string;
  /** Root of containerd's data (io.containerd.content.v1.content/ lives here when the local store is used). */
  readonly root: string;
  /** overlayfs when containerd reports it usable, native otherwise. */
  readonly snapshotter: 'overlayfs' | 'native';
  /** The daemon's process id (the benchmark samples its memory). */
  readonly pid: number;
  log(): string;
  /** Runs `ctr --address <socket> --namespace <namespace> ...args`. */
  ctr(args: string[], options?: RunOptions & { namespace?: string }): Promise<RunResult>;
  /** Same, rejecting on a non-zero exit; resolves to stdout. */
  ctrOk(args: string[], options?: RunOptions & { namespace?: string }): Promise<string>;
  /** Starts ctr with its stdin, stdout and stderr as pipes, for commands fed bit by bit. */
  spawnCtr(args: string[], options?: { namespace?: string }): ChildProcess;
  stop(): Promise<void>;
}

/** Why containerd tests cannot run here, or undefined when they can. */
export function containerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'containerd tests need root';
  for (const [bin, args] of [
    [CONTAINERD_BIN, ['--version']],
    [CTR_BIN, ['--version']],
  ] as const) {
    const res = spawnSync(bin, [...args], { encoding: 'utf8' });
    if (res.error || res.status !== 0) return `${bin} is not available (${res.error?.message ?? res.stderr.trim()}); install containerd`;
  }
  return undefined;
}

export async function startContainerd(options: ContainerdOptions): Promise<Containerd> {
  const { dir } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const root = join(dir, 'root');
  const address = join(dir, 'containerd.sock');
  // The snippet goes in as a drop-in, the way its users are told to install it.
  const imports: string[] = [];
  if (options.contentProxy !== undefined) {
    imports.push(join(dir, 'contentd.toml'));
    await writeFile(imports[0]!, options.contentProxy);
  }
  const config = {
    version: 2,
    imports,
    root,
    state: join(dir, 'state'),
    disabled_plugins: UNUSED_PLUGINS,
    grpc: { address },
    ttrpc: { address: `${address}.ttrpc` },
    debug: { address: join(dir, 'debug.sock'), level: 'debug' },
    // Keeps containerd away from the host's /opt/containerd.
    plugins: { 'io.containerd.internal.v1.opt': { path: join(dir, 'opt') } },
  };
  const configFile = join(dir, 'config.toml');
  await writeFile(configFile, stringify(config));
  const daemon: Daemon = await startDaemon(CONTAINERD_BIN, ['--config', configFile], {
    logFile: join(dir, 'containerd.log'),
    ready: (log) => /containerd successfully booted/.test(log) && existsSync(address),
  });

  const withNamespace = (args: string[], namespace = 'default'): string[] => ['--address', address, '--namespace', namespace, ...args];
  const ctr: Containerd['ctr'] = (args, opts = {}) => run(CTR_BIN, withNamespace(args, opts.namespace), { timeoutMs: 120_000, ...opts });
  const ctrOk: Containerd['ctrOk'] = (args, opts = {}) => runOk(CTR_BIN, withNamespace(args, opts.namespace), { timeoutMs: 120_000, ...opts });

  let snapshotter: Containerd['snapshotter'] = 'native';
  try {
    const plugins = await ctrOk(['plugins', 'ls']);
    if (parsePlugins(plugins).some((p) => p.type === 'io.containerd.snapshotter.v1' && p.id === 'overlayfs' && p.status === 'ok')) snapshotter = 'overlayfs';
  } catch (e) {
    await daemon.stop();
    throw e;
  }
  const spawnCtr: Containerd['spawnCtr'] = (args, opts = {}) => spawn(CTR_BIN, withNamespace(args, opts.namespace), { stdio: 'pipe' });
  return { dir, address, root, snapshotter, pid: daemon.process.pid!, log: daemon.log, ctr, ctrOk, spawnCtr, stop: () => daemon.stop() };
}

/** The config snippet `contentd containerd-config` prints for a test server. */
export function contentdSnippet(server: TestServer): Promise<string> {
  return runOk(process.execPath, [CLI, '--root', server.root, 'containerd-config', '--address', server.address]);
}

/** Asserts that `ctr images check` reports ref complete and unpacked. */
export async function assertImageComplete(containerd: Containerd, ref: string, namespace: string): Promise<void> {
  const out = await containerd.ctrOk(['images', 'check', '--snapshotter', containerd.snapshotter], { namespace });
  const line = out.split('\n').find((l) => l.startsWith(`${ref} `));
  assert.ok(line, `${ref} not listed by ctr images check:\n${out}`);
  assert.match(line, /\scomplete \((\d+)\/\1\)\s/, `${ref} not complete:\n${out}`);
  assert.match(line, /\strue\s*$/, `${ref} not unpacked:\n${out}`);
}

/** Rows of `ctr plugins ls`: type, id, platforms, status. */
export function parsePlugins(output: string): Array<{ type: string; id: string; status: string }> {
  return output
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 4)
    .map((cols) => ({ type: cols[0]!, id: cols[1]!, status: cols[cols.length - 1]! }));
}
