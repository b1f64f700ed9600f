import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { openBlobBackend } from '../blobs/open';
import type { Config } from '../config/config';
import { MetadataDB } from '../db/metadata';
import { lockRoot, waitForRootLock } from '../db/root-lock';
import { observeStorage, silentObserver, type StoreObserver } from '../store/observer';
import { Store } from '../store/store';
import { LeasesService } from '../../generated/containerd/services/leases/v1/leases';
import { GarbageCollectorService } from '../../generated/contentd/services/gc/v1/gc';
import { Collector, GcScheduler } from '../store/gc';
import { RpcServer } from '../rpc/server';
import { Code, type ServiceDefinition, type ServiceImplementation, type StreamingHandler, type UnaryHandler } from '../rpc/types';
import { CONTENT_SERVICE_NAME, contentService } from './content-service';
import { CONTENT_DEFINITION } from './wire';
import { GC_SERVICE_NAME, gcService } from './gc-service';
import { LEASES_SERVICE_NAME, leasesService } from './leases-service';
import type { HandlerEnv } from './handlers';
import { Metrics, serveMetrics, type MetricsEndpoint } from './metrics';
import { reconcile } from './reconcile';
import { prepareSocketPath, setSocketAccess } from './socket';

export interface RunningServer {
  address: string;
  store: Store;
  /** HOST:PORT of the Prometheus endpoint, when metrics.address is set. */
  metricsAddress?: string;
  /** Stops accepting requests, lets streams in flight finish (up to graceMs), closes the database. */
  shutdown(graceMs?: number): Promise<void>;
}

interface ServiceEntry {
  /** Full gRPC name, as the health service reports it. */
  name: string;
  definition: ServiceDefinition;
  implement(store: Store, env: HandlerEnv, gc: GcScheduler): ServiceImplementation;
}

/** Every gRPC service contentd serves (besides health): the one list to extend. */
const SERVICES: ServiceEntry[] = [
  { name: CONTENT_SERVICE_NAME, definition: CONTENT_DEFINITION, implement: (store, env) => contentService(store, env).implementation },
  { name: LEASES_SERVICE_NAME, definition: LeasesService, implement: (store, env, gc) => leasesService(store.leases, gc, env) },
  { name: GC_SERVICE_NAME, definition: GarbageCollectorService, implement: (_store, env, gc) => gcService(gc, env) },
];

export interface OpenOptions {
  /** Receives the store's metrics hooks; storage failures are reported to it too. */
  observer?: StoreObserver;
  /** Wait for the root's lock instead of failing with RootLockedError (the server waits; offline commands should not). */
  waitForLock?: boolean;
}

/** A store opened by openStore, with what it holds open. */
export interface OpenedStore {
  store: Store;
  db: MetadataDB;
  /** Closes open writers (their ingests stay resumable), the blob backend and SQLite, then releases the root's lock. */
  close(): Promise<void>;
}

/**
 * Opens the store for reading and writing, as its one writer: takes the
 * root's lock (RootLockedError while a server or another offline command
 * holds it), then cleans up after any crash.
 */
export async function openStore(config: Config, logger: Logger, options: OpenOptions = {}): Promise<OpenedStore> {
  const observer = options.observer ?? silentObserver;
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  const lock = options.waitForLock
    ? await waitForRootLock(config.root, () => logger.warn('another contentd process holds the store; waiting for it to finish', { root: config.root }))
    : lockRoot(config.root);
  try {
    const db = observeStorage(new MetadataDB(join(config.root, 'metadata.db')), 'sqlite', observer);
    const backend = observeStorage(await openBlobBackend(config, { exclusive: true, logger }), 'blobs', observer);
    await reconcile(db, backend, logger);
    const store = new Store(db, backend, {
      namespacePolicy: config.namespaces.policy,
      maxActiveIngests: config.limits.maxActiveIngests,
      maxBlobSize: config.limits.maxBlobSize,
      observer,
    });
    const close = async (): Promise<void> => {
      await store.closeWriters();
      await backend.close();
      db.close();
      lock.release();
    };
    return { store, db, close };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** Answers every method with UNAVAILABLE, until the store is open. */
function startingUp(definition: ServiceDefinition): ServiceImplementation {
  const error = { code: Code.UNAVAILABLE, details: 'contentd is starting up' };
  const unavailable: UnaryHandler & StreamingHandler = (call) => call.fail(error);
  return Object.fromEntries(Object.keys(definition).map((key) => [key, unavailable]));
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const setHealth = (state: ServingStatus): void => {
    for (const name of ['', ...SERVICES.map((s) => s.name)]) health.setStatus(name, state);
  };
  const health = new HealthImplementation();
  setHealth('NOT_SERVING');
  const metrics = config.metrics.address ? new Metrics() : undefined;
  const env: HandlerEnv = { logger, requests: metrics };
  const server = new RpcServer({
    maxReceiveMessageSize: config.grpc.maxRecvMessageSize,
    maxSendMessageSize: config.grpc.maxSendMessageSize,
    socketSendBuffer: config.grpc.socketSendBuffer,
    onInternalError: (error) => logger.error('a connection failed on an internal error and was closed', { error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  });
  // grpc-health-check is typed against grpc-js's server; at run time it needs only what
  // RpcServer's calls have (request, the callback, write, 'cancelled').
  health.addToServer(server as unknown as Parameters<HealthImplementation['addToServer']>[0]);
  // Listen before opening the store, so that probes see NOT_SERVING and
  // clients UNAVAILABLE (which they retry) while start-up clean-up runs.
  for (const service of SERVICES) server.addService(service.definition, startingUp(service.definition));

  const address = config.grpc.address;
  let endpoint: MetricsEndpoint | undefined;
  let opened: OpenedStore | undefined;
  try {
    if (metrics) {
      endpoint = await serveMetrics(metrics, config.metrics.address);
      logger.info('metrics endpoint', { url: `http://${endpoint.address}/metrics` });
    }
    await prepareSocketPath(address);
    await server.listen(address);
    await setSocketAccess(address, config.grpc.socketMode, config.grpc.uid, config.grpc.gid);
    opened = await openStore(config, logger, { observer: metrics, waitForLock: true });
  } catch (e) {
    server.forceShutdown();
    await endpoint?.close();
    throw e;
  }
  const { store, db, close: closeStore } = opened;
  if (metrics) {
    metrics.setBlobTotals(db.blobTotals());
    metrics.watchIngests(() => store.activeIngests);
  }
  const gc = new GcScheduler(new Collector(store, { ingestExpiryMs: config.gc.ingestExpiry }), store, {
    intervalMs: config.gc.interval,
    deletionThreshold: config.gc.deletionThreshold,
    // Quiet when a scheduled pass finds nothing to do.
    onReport: (report, reason) =>
      logger.log(report.blobs.length + report.content.length + report.ingests.length + report.leases.length > 0 ? 'info' : 'debug', 'garbage collected', {
        reason,
        content: report.content.length,
        ingests: report.ingests.length,
        leases: report.leases.length,
        blobs: report.blobs.length,
        bytes: report.bytesReclaimed,
        durationMs: Math.round(report.durationMs),
      }),
    onError: (error, reason) => logger.error('garbage collection failed', { reason, error: error instanceof Error ? error.message : String(error) }),
  });
  gc.start();
  for (const service of SERVICES) {
    server.removeService(service.definition);
    server.addService(service.definition, service.implement(store, env, gc));
  }
  setHealth('SERVING');
  logger.info('serving', { address, root: config.root });

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 10_000): Promise<void> =>
    (stopping ??= (async () => {
      setHealth('NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        void server.shutdown().then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await gc.stop();
      await closeStore();
      await endpoint?.close();
      logger.info('stopped');
    })());
  return { address, store, metricsAddress: endpoint?.address, shutdown };
}
