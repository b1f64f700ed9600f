import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StoreObserver } from '../store/observer';
import type { RequestObserver } from './handlers';

/**
 * Prometheus metrics. Request metrics use go-grpc-prometheus' names (what
 * containerd itself exports) so existing dashboards apply; the rest are
 * contentd_*. Fed by the request handlers (RequestObserver) and the store
 * (StoreObserver); served over HTTP by serveMetrics.
 */
export class Metrics implements RequestObserver, StoreObserver {
  readonly registry = new Registry();
  private readonly startedTotal: Counter<'grpc_service' | 'grpc_method'>;
  private readonly handledTotal: Counter<'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly handling: Histogram<'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly written: Counter;
  private readonly read: Counter;
  private readonly blobs: Gauge;
  private readonly blobBytes: Gauge;
  private readonly gcRuns: Counter;
  private readonly gcReclaimed: Counter;
  private readonly storageErrors: Counter<'component' | 'operation'>;
  private activeIngests: () => number = () => 0;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.startedTotal = new Counter({ name: 'grpc_server_started_total', help: 'RPCs started on the server.', labelNames: ['grpc_service', 'grpc_method'], registers });
    this.handledTotal = new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by gRPC status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'],
      registers,
    });
    this.handling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from the start of an RPC to its status, by gRPC status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'],
      // Writes and reads of large layers take minutes.
      buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120, 600],
      registers,
    });
    this.written = new Counter({ name: 'contentd_content_bytes_written_total', help: 'Bytes received by Write and staged in ingests.', registers });
    this.read = new Counter({ name: 'contentd_content_bytes_read_total', help: 'Bytes of committed content returned by Read.', registers });
    const metrics = this;
    new Gauge({
      name: 'contentd_ingests_active',
      help: 'Ingests being written now (held by a Write stream).',
      registers,
      collect() {
        this.set(metrics.activeIngests());
      },
    });
    this.blobs = new Gauge({ name: 'contentd_blobs', help: 'Blobs stored, each counted once however many namespaces reference it.', registers });
    this.blobBytes = new Gauge({ name: 'contentd_blobs_bytes', help: 'Total size of the blobs stored.', registers });
    this.gcRuns = new Counter({ name: 'contentd_gc_runs_total', help: 'Garbage collection passes completed.', registers });
    this.gcReclaimed = new Counter({ name: 'contentd_gc_reclaimed_bytes_total', help: 'Bytes freed by garbage collection.', registers });
    this.storageErrors = new Counter({
      name: 'contentd_storage_errors_total',
      help: 'Failed storage operations: component "blobs" (the blob backend: disk) or "sqlite" (metadata), by method.',
      labelNames: ['component', 'operation'],
      registers,
    });
  }

  /** Where the ingests gauge reads from, at scrape time. */
  watchIngests(count: () => number): void {
    this.activeIngests = count;
  }

  /** The blob gauges' starting point; blobCommitted and blobDeleted move them from there. */
  setBlobTotals(totals: { count: number; bytes: number }): void {
    this.blobs.set(totals.count);
    this.blobBytes.set(totals.bytes);
  }

  // ---- RequestObserver ----

  started(method: string): void {
    this.startedTotal.inc(methodLabels(method));
  }

  finished(method: string, code: string, seconds: number): void {
    const labels = { ...methodLabels(method), grpc_code: code };
    this.handledTotal.inc(labels);
    this.handling.observe(labels, seconds);
  }

  // ---- StoreObserver ----

  bytesWritten(bytes: number): void {
    this.written.inc(bytes);
  }

  bytesRead(bytes: number): void {
    this.read.inc(bytes);
  }

  blobCommitted(size: number): void {
    this.blobs.inc();
    this.blobBytes.inc(size);
  }

  blobDeleted(size: number): void {
    this.blobs.dec();
    this.blobBytes.dec(size);
  }

  gcRun(bytesReclaimed: number): void {
    this.gcRuns.inc();
    this.gcReclaimed.inc(bytesReclaimed);
  }

  storageError(operation: string, _error: unknown): void {
    const dot = operation.indexOf('.');
    this.storageErrors.inc(dot < 0 ? { component: operation, operation: '' } : { component: operation.slice(0, dot), operation: operation.slice(dot + 1) });
  }
}

/** "Service/Method" as the request handlers name it. */
function methodLabels(method: string): { grpc_service: string; grpc_method: string } {
  const slash = method.lastIndexOf('/');
  return { grpc_service: method.slice(0, slash), grpc_method: method.slice(slash + 1) };
}

/** Parses HOST:PORT, [IPv6]:PORT or :PORT (every interface). */
export function parseListenAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`metrics address ${JSON.stringify(address)} must be HOST:PORT, e.g. 127.0.0.1:9464`);
  return { host: match[1] ?? match[2] ?? '', port };
}

export interface MetricsEndpoint {
  /** The bound HOST:PORT (the real port when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on address over plain HTTP. */
export async function serveMetrics(metrics: Metrics, address: string): Promise<MetricsEndpoint> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; they must not hold up shutdown.
        server.closeAllConnections();
      }),
  };
}
