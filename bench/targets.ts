import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { contentdSnippet, startContainerd, type Containerd } from '../test/support/containerd';
import { startDaemon, type Daemon } from '../test/support/process';
import { startTestServer, type TestServer } from '../test/support/server';
import { buildGoTool } from './go-build';
import { startS3Target } from './s3';

/**
 * What a row runs against: this server on its own ("direct"), a containerd
 * on its built-in store ("containerd", the baseline), or a containerd using
 * this server as its content proxy plugin ("proxy", configured with the
 * snippet `contentd containerd-config` prints), or a containerd using its own
 * local store, served by bench/refserver (Go), as its proxy plugin
 * ("proxy-ref": the best any proxy plugin could do), or this server with its
 * blobs in S3 on a private Ceph RGW ("s3", bench/s3.ts).
 */
export const TARGET_NAMES = ['direct', 'containerd', 'proxy', 'proxy-ref', 's3'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  readonly name: TargetName;
  /** The socket the benchmark client talks to. */
  readonly address: string;
  /** The process holding the content: its peak RSS is reported. */
  readonly storePid: number;
  /** containerd's process where it only passes calls on to a proxy plugin (proxy, proxy-ref): its CPU is the hop's cost. */
  readonly hopPid?: number;
  /** The targets that have a containerd, for ctr. */
  readonly containerd?: Containerd;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** Where this instance keeps its roots and sockets. */
  dir: string;
  /** Set to write contentd CPU profiles (node --cpu-prof) into this directory. */
  profileDir?: string;
}

export async function startTarget(name: TargetName, options: TargetOptions): Promise<Target> {
  switch (name) {
    case 'direct': {
      const server = await startContentd(options);
      return { name, address: server.address, storePid: server.process.pid!, stop: () => server.destroy() };
    }
    case 'containerd': {
      const containerd = await startContainerd({ dir: join(options.dir, 'containerd') });
      return { name, address: containerd.address, storePid: containerd.pid, containerd, stop: () => containerd.stop() };
    }
    case 'proxy': {
      const server = await startContentd(options);
      return behindContainerd(name, options, { pid: server.process.pid!, stop: () => server.destroy() }, () => contentdSnippet(server));
    }
    case 'proxy-ref': {
      const { daemon, address } = await startRefServer(options.dir);
      return behindContainerd(name, options, { pid: daemon.process.pid!, stop: () => daemon.stop() }, async () => proxySnippet(address));
    }
    case 's3':
      return startS3Target((config) => startContentd(options, config));
  }
}

async function startContentd(options: TargetOptions, config?: string): Promise<TestServer> {
  const nodeArgs = options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [];
  const root = join(options.dir, 'contentd');
  // The config file is written into the root, so it must exist first.
  if (config !== undefined) await mkdir(root, { recursive: true, mode: 0o700 });
  return startTestServer({ root, nodeArgs, config });
}

/** containerd with store as its content proxy plugin; the store is stopped with containerd, or at once if containerd does not start. */
async function behindContainerd(
  name: TargetName,
  options: TargetOptions,
  store: { pid: number; stop(): Promise<void> },
  snippet: () => Promise<string>,
): Promise<Target> {
  let containerd: Containerd;
  try {
    containerd = await startContainerd({ dir: join(options.dir, 'containerd'), contentProxy: await snippet() });
  } catch (e) {
    await store.stop();
    throw e;
  }
  return {
    name,
    address: containerd.address,
    storePid: store.pid,
    hopPid: containerd.pid,
    containerd,
    stop: async () => {
      await containerd.stop();
      await store.stop();
    },
  };
}

async function startRefServer(dir: string): Promise<{ daemon: Daemon; address: string }> {
  const binary = await buildGoTool('refserver').catch((e: unknown) => {
    throw new Error(`the proxy-ref target: ${(e as Error).message}; leave it out with --targets direct,containerd,proxy`);
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const address = join(dir, 'refserver.sock');
  const daemon = await startDaemon(binary, [join(dir, 'refserver'), address], { logFile: join(dir, 'refserver.log'), ready: () => existsSync(address) });
  return { daemon, address };
}

/** The same shape as `contentd containerd-config`'s snippet, for any content proxy at address. */
function proxySnippet(address: string): string {
  return stringify({ version: 2, disabled_plugins: ['io.containerd.content.v1.content'], proxy_plugins: { refserver: { type: 'content', address } } });
}
