// docker-registry (distribution) on 127.0.0.1 and a free port, storing under
// a temporary directory: a registry to push to and pull from without network.
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startDaemon } from './process';

export const REGISTRY_BIN = process.env.DOCKER_REGISTRY_BIN ?? 'docker-registry';

export interface Registry {
  /** 127.0.0.1:<port>, the registry part of image references. */
  readonly host: string;
  log(): string;
  stop(): Promise<void>;
}

/** Why a registry cannot be started here, or undefined when it can. */
export function registryMissing(): string | undefined {
  const res = spawnSync(REGISTRY_BIN, ['--version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) return `${REGISTRY_BIN} is not available (${res.error?.message ?? res.stderr.trim()}); install docker-registry`;
  return undefined;
}

/** A port nobody listens on right now (the registry binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startRegistry(dir: string): Promise<Registry> {
  await mkdir(join(dir, 'storage'), { recursive: true });
  const host = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
      '',
    ].join('\n'),
  );
  const daemon = await startDaemon(REGISTRY_BIN, ['serve', config], {
    logFile: join(dir, 'registry.log'),
    ready: async () => {
      try {
        return (await fetch(`http://${host}/v2/`)).status === 200;
      } catch {
        return false;
      }
    },
  });
  return { host, log: daemon.log, stop: () => daemon.stop() };
}
