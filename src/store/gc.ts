import { GcDB } from '../db/gc';
import { LeaseDB } from '../db/leases';
import { nowNs } from './clock';
import { unavailable } from './errors';
import { LABEL_GC_FLAT, leaseExpiry, RESOURCE_CONTENT, RESOURCE_INGESTS } from './leases';
import type { Store } from './store';
import type { Labels } from './types';

/**
 * Garbage collection of what namespaced clients wrote, after containerd's
 * metadata collector (metadata/gc.go): mark from the roots, sweep the rest.
 *
 * Roots, per namespace: content labelled containerd.io/gc.root; leases not
 * past their containerd.io/gc.expire label, with the content and ingests they
 * hold (a lease labelled containerd.io/gc.flat holds its content without what
 * it references); ingests opened without a lease and written to within the
 * ingest expiry; ingests a writer holds open. References: the
 * containerd.io/gc.ref.content[./…] labels of content (same namespace), and
 * the blob a shared ingest is based on.
 *
 * Sweep: unmarked content rows and ingests of namespaced clients, expired
 * leases, then every blob no namespace references any more, row and file.
 * The global namespace (requests without a namespace: containerd as a proxy)
 * is never swept: its rows go only by its own Delete, and keep their blobs.
 *
 * The rows are decided and removed in one synchronous SQLite transaction, so
 * no request interleaves with a pass; files are removed afterwards, each blob
 * under its digest lock and only if no commit brought the digest back.
 */

export interface GcReport {
  dryRun: boolean;
  /** When the pass started, ns since the epoch. */
  startedAt: bigint;
  durationMs: number;
  content: Array<{ namespace: string; digest: string }>;
  ingests: Array<{ namespace: string; ref: string }>;
  leases: Array<{ namespace: string; id: string }>;
  blobs: Array<{ digest: string; size: number }>;
  /** Bytes of the blobs removed (or that would be, in a dry run). */
  bytesReclaimed: number;
}

export interface CollectorOptions {
  /** Ingests without a lease are removed after this long without a write; containerd uses 24 h. */
  ingestExpiryMs: number;
}

const LABEL_GC_ROOT = 'containerd.io/gc.root';
const LABEL_GC_REF_CONTENT = 'containerd.io/gc.ref.content';

/** containerd's sendLabelRefs: containerd.io/gc.ref.content, or that prefix followed by '.' or '/'. */
function contentRefs(labels: Labels): string[] {
  const refs: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (!key.startsWith(LABEL_GC_REF_CONTENT)) continue;
    const next = key[LABEL_GC_REF_CONTENT.length];
    if (next === undefined || next === '.' || next === '/') refs.push(value);
  }
  return refs;
}

const key = (namespace: string, id: string): string => `${namespace}\u0000${id}`;

/** File removals in flight at once: a remote backend (S3) answers each one slowly. */
const FILE_REMOVALS_IN_FLIGHT = 16;

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface IngestCandidate {
  namespace: string;
  ref: string;
  id: string;
  baseDigest: string | null;
}

interface Plan {
  content: Array<{ namespace: string; digest: string }>;
  ingests: IngestCandidate[];
  leases: Array<{ namespace: string; id: string }>;
  blobs: Array<{ digest: string; size: number }>;
}

export class Collector {
  private readonly gcdb: GcDB;
  private readonly leasedb: LeaseDB;
  private chain: Promise<unknown> = Promise.resolve();
  private queued?: Promise<GcReport>;

  constructor(
    private readonly store: Store,
    private readonly options: CollectorOptions,
  ) {
    this.gcdb = new GcDB(store.db.db);
    this.leasedb = new LeaseDB(store.db.db);
  }

  /**
   * Runs a pass after the one in progress, if any. Callers that ask while a
   * pass is waiting to start share it: it will see everything they did.
   */
  collect(options: { dryRun?: boolean } = {}): Promise<GcReport> {
    const dryRun = options.dryRun ?? false;
    if (!dryRun && this.queued) return this.queued;
    const pass = this.chain.then(() => {
      if (!dryRun) this.queued = undefined;
      return this.pass(dryRun);
    });
    if (!dryRun) this.queued = pass;
    this.chain = pass.catch(() => undefined);
    return pass;
  }

  /** Resolves when no pass is running or queued. */
  async idle(): Promise<void> {
    await this.chain;
  }

  private async pass(dryRun: boolean): Promise<GcReport> {
    const startedAt = nowNs();
    const plan = dryRun ? this.plan(startedAt) : this.store.db.transaction(() => this.sweepRows(this.plan(startedAt)));
    let bytesReclaimed = 0;
    if (dryRun) {
      bytesReclaimed = plan.blobs.reduce((sum, blob) => sum + blob.size, 0);
    } else {
      await forEachLimited(plan.ingests, FILE_REMOVALS_IN_FLIGHT, (ingest) => this.store.dropIngestFiles(ingest.id));
      await forEachLimited(plan.blobs, FILE_REMOVALS_IN_FLIGHT, async (blob) => {
        if (await this.store.removeBlobFile(blob.digest, blob.size)) bytesReclaimed += blob.size;
      });
      this.store.observer.gcRun(bytesReclaimed);
    }
    const byName = <T>(f: (x: T) => string) => (a: T, b: T) => (f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0);
    return {
      dryRun,
      startedAt,
      durationMs: Number(nowNs() - startedAt) / 1e6,
      content: plan.content.sort(byName((c) => key(c.namespace, c.digest))),
      ingests: plan.ingests.map(({ namespace, ref }) => ({ namespace, ref })).sort(byName((i) => key(i.namespace, i.ref))),
      leases: plan.leases.sort(byName((l) => key(l.namespace, l.id))),
      blobs: plan.blobs.sort(byName((b) => b.digest)),
      bytesReclaimed,
    };
  }

  /** Mark: what survives; the plan lists the rest. Reads only. */
  private plan(now: bigint): Plan {
    const content = new Map(this.gcdb.namespacedContent().map((node) => [key(node.namespace, node.digest), node]));
    const ingests = this.store.db.allIngests();
    const leasedIngests = this.leasedb.leasedIngests();
    const expiryNs = BigInt(this.options.ingestExpiryMs) * 1_000_000n;

    const liveContent = new Set<string>();
    const liveIngests = new Set<string>();
    const visited = { full: new Set<string>(), flat: new Set<string>() };
    const stack: Array<{ namespace: string; digest: string; flat: boolean }> = [];
    const markContent = (namespace: string, digest: string, flat: boolean): void => {
      const k = key(namespace, digest);
      const seen = flat ? visited.flat : visited.full;
      if (!content.has(k) || seen.has(k)) return;
      seen.add(k);
      liveContent.add(k);
      stack.push({ namespace, digest, flat });
    };

    for (const node of content.values()) {
      if (Object.hasOwn(node.labels, LABEL_GC_ROOT)) markContent(node.namespace, node.digest, false);
    }
    const expiredLeases: Plan['leases'] = [];
    const liveLeases = new Map<string, boolean>();
    for (const lease of this.leasedb.all()) {
      const expiry = leaseExpiry(lease.labels);
      if (expiry !== undefined && expiry < now) expiredLeases.push({ namespace: lease.namespace, id: lease.id });
      else liveLeases.set(key(lease.namespace, lease.id), Object.hasOwn(lease.labels, LABEL_GC_FLAT));
    }
    for (const resource of this.leasedb.allResources()) {
      const flat = liveLeases.get(key(resource.namespace, resource.lease));
      if (flat === undefined) continue;
      if (resource.type === RESOURCE_CONTENT) markContent(resource.namespace, resource.id, flat);
      else if (resource.type === RESOURCE_INGESTS) liveIngests.add(key(resource.namespace, resource.id));
    }
    for (const row of ingests) {
      if (!row.namespace) continue;
      const k = key(row.namespace, row.ref);
      const unleasedAndFresh = !leasedIngests.has(k) && now - row.updatedAt < expiryNs;
      if (unleasedAndFresh || this.store.ingestInUse(row.namespace, row.ref)) liveIngests.add(k);
      // A shared ingest keeps the content it is a copy of, as containerd's "expected".
      if (liveIngests.has(k) && row.baseDigest) markContent(row.namespace, row.baseDigest, false);
    }
    for (let item = stack.pop(); item; item = stack.pop()) {
      if (item.flat) continue;
      for (const digest of contentRefs(content.get(key(item.namespace, item.digest))!.labels)) markContent(item.namespace, digest, false);
    }

    const doomedContent = [...content.values()].filter((node) => !liveContent.has(key(node.namespace, node.digest)));
    const doomedIngests = ingests.filter((row) => row.namespace && !liveIngests.has(key(row.namespace, row.ref)));

    // A blob survives while a row of any namespace or a surviving ingest needs it.
    const needed = this.gcdb.globalDigests();
    for (const k of liveContent) needed.add(content.get(k)!.digest);
    for (const row of ingests) {
      if (row.baseDigest && (!row.namespace || liveIngests.has(key(row.namespace, row.ref)))) needed.add(row.baseDigest);
    }
    return {
      content: doomedContent.map(({ namespace, digest }) => ({ namespace, digest })),
      ingests: doomedIngests.map(({ namespace, ref, id, baseDigest }) => ({ namespace, ref, id, baseDigest })),
      leases: expiredLeases,
      blobs: this.gcdb.blobs().filter((blob) => !needed.has(blob.digest)),
    };
  }

  /** Sweep, rows only: runs inside the transaction that planned it. */
  private sweepRows(plan: Plan): Plan {
    for (const lease of plan.leases) this.leasedb.delete(lease.namespace, lease.id);
    for (const row of plan.content) this.store.db.deleteContent(row.namespace, row.digest);
    for (const ingest of plan.ingests) {
      this.store.db.deleteIngest(ingest.namespace, ingest.ref);
      this.leasedb.setIngestLeased(ingest.namespace, ingest.ref, false);
    }
    for (const blob of plan.blobs) this.store.db.deleteBlob(blob.digest);
    return plan;
  }
}

export interface SchedulerOptions {
  /** Time between scheduled passes; 0 for none. */
  intervalMs: number;
  /** A pass starts after this many deletions by namespaced clients; 0 to never count. */
  deletionThreshold: number;
  onReport?: (report: GcReport, reason: string) => void;
  onError?: (error: unknown, reason: string) => void;
}

/** When the collector runs on its own: on a timer, and after a number of deletions. */
export class GcScheduler {
  private timer?: NodeJS.Timeout;
  private deletions = 0;
  private stopped = false;

  constructor(
    readonly collector: Collector,
    private readonly store: Store,
    private readonly options: SchedulerOptions,
  ) {}

  start(): void {
    const noteDeletion = (): void => this.noteDeletion();
    this.store.onDeletion = noteDeletion;
    this.store.leases.onDeletion = noteDeletion;
    if (this.options.intervalMs > 0) {
      // Failures are reported through onError; the next tick tries again.
      this.timer = setInterval(() => this.run('schedule').catch(() => undefined), this.options.intervalMs);
      this.timer.unref();
    }
  }

  /** Runs a pass now (after the one in progress) and reports it. */
  async run(reason: string): Promise<GcReport> {
    if (this.stopped) throw unavailable('the garbage collector is stopping');
    this.deletions = 0;
    try {
      const report = await this.collector.collect();
      this.options.onReport?.(report, reason);
      return report;
    } catch (e) {
      this.options.onError?.(e, reason);
      throw e;
    }
  }

  /** Stops scheduling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.store.onDeletion = () => undefined;
    this.store.leases.onDeletion = () => undefined;
    await this.collector.idle();
  }

  private noteDeletion(): void {
    const threshold = this.options.deletionThreshold;
    if (threshold > 0 && ++this.deletions >= threshold) this.run('deletion threshold').catch(() => undefined);
  }
}
