import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { LocalBlobBackend } from '../blobs/local';
import type { Config } from '../config/config';
import { MetadataDB } from '../db/metadata';
import { Store } from '../store/store';
import { CONTENT_SERVICE_NAME, contentService } from './content-service';
import type { HandlerEnv } from './handlers';
import { reconcile } from './reconcile';
import { prepareSocketPath, setSocketAccess } from './socket';

export interface RunningServer {
  address: string;
  store: Store;
  /** Stops accepting requests, lets streams in flight finish (up to graceMs), closes the database. */
  shutdown(graceMs?: number): Promise<void>;
}

const SERVICES = [CONTENT_SERVICE_NAME];

export async function openStore(config: Config, logger: Logger): Promise<{ store: Store; db: MetadataDB; backend: LocalBlobBackend }> {
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  const db = new MetadataDB(join(config.root, 'metadata.db'));
  const backend = new LocalBlobBackend(config.root);
  await backend.init();
  await reconcile(db, backend, logger);
  const store = new Store(db, backend, {
    namespacePolicy: config.namespaces.policy,
    maxActiveIngests: config.limits.maxActiveIngests,
    maxBlobSize: config.limits.maxBlobSize,
  });
  return { store, db, backend };
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((s) => [s, 'NOT_SERVING'])));
  const { store, db, backend } = await openStore(config, logger);
  const env: HandlerEnv = { logger };
  const server = new Server({
    'grpc.max_receive_message_length': config.grpc.maxRecvMessageSize,
    'grpc.max_send_message_length': config.grpc.maxSendMessageSize,
  });
  const content = contentService(store, env);
  server.addService(content.definition, content.implementation);
  health.addToServer(server);

  const address = config.grpc.address;
  await prepareSocketPath(address);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  await setSocketAccess(address, config.grpc.socketMode, config.grpc.uid, config.grpc.gid);
  for (const service of ['', ...SERVICES]) health.setStatus(service, 'SERVING');
  logger.info('serving', { address, root: config.root });

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 10_000): Promise<void> =>
    (stopping ??= (async () => {
      for (const service of ['', ...SERVICES]) health.setStatus(service, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await store.closeWriters();
      await backend.close();
      db.close();
      logger.info('stopped');
    })());
  return { address, store, shutdown };
}
