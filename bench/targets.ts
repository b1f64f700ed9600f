import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { contentdSnippet, startContainerd, type Containerd } from '../test/support/containerd';
import { startTestServer, type TestServer } from '../test/support/server';
import { startS3Target } from './s3';

/**
 * What a row runs against: this server on its own ("direct"), a containerd
 * on its built-in store ("containerd", the baseline), or a containerd using
 * this server as its content proxy plugin ("proxy", configured with the
 * snippet `contentd containerd-config` prints), or this server with its blobs
 * in S3 on a private Ceph RGW ("s3", bench/s3.ts).
 */
export const TARGET_NAMES = ['direct', 'containerd', 'proxy', 's3'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  readonly name: TargetName;
  /** The socket the benchmark client talks to. */
  readonly address: string;
  /** The process holding the content: its peak RSS is reported. */
  readonly storePid: number;
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
      let containerd: Containerd;
      try {
        containerd = await startContainerd({ dir: join(options.dir, 'containerd'), contentProxy: await contentdSnippet(server) });
      } catch (e) {
        await server.destroy();
        throw e;
      }
      return {
        name,
        address: containerd.address,
        storePid: server.process.pid!,
        containerd,
        stop: async () => {
          await containerd.stop();
          await server.destroy();
        },
      };
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
