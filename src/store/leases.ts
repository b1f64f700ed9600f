import { randomBytes } from 'node:crypto';
import type { LeaseDB, LeaseRow, ResourceRow } from '../db/leases';
import type { MetadataDB } from '../db/metadata';
import { nowNs } from './clock';
import { validateDigest } from './digest';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, notImplemented } from './errors';
import { leaseAdaptor, parseFilters } from './filters';
import type { Labels, RequestContext } from './types';

/**
 * containerd's lease manager (metadata/leases.go) over SQLite. Leases are
 * namespaced and hold content digests and ingest refs (snapshot resources are
 * accepted and listed, for containerd clients, but nothing here uses them).
 *
 * A lease id the store does not know, arriving in the containerd-lease header
 * of a namespaced content request, is created on first use with the label
 * `contentd.io/implicit` instead of being refused as containerd's metadata
 * store would: containerd as a proxy (its CRI plugin, for one) sends its own
 * lease ids, which exist only in containerd's database. An implicit lease has
 * no expiry, so what was written under it is never collected until someone
 * deletes that lease through the Leases service. Requests without a namespace
 * ignore the header: that content is never collected anyway.
 */

export interface Lease {
  id: string;
  createdAt: bigint;
  labels: Labels;
}

export interface LeaseResource {
  id: string;
  type: string;
}

export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';
export const LABEL_GC_FLAT = 'containerd.io/gc.flat';
export const LABEL_IMPLICIT = 'contentd.io/implicit';

export const RESOURCE_CONTENT = 'content';
export const RESOURCE_INGESTS = 'ingests';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** When a lease's containerd.io/gc.expire label says it ends (ns), undefined if never; invalid values are ignored, as containerd does. */
export function leaseExpiry(labels: Labels): bigint | undefined {
  const value = labels[LABEL_GC_EXPIRE];
  if (value === undefined || !RFC3339.test(value)) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return undefined;
  const fraction = /\.(\d+)/.exec(value)?.[1] ?? '';
  const subMs = BigInt((fraction.slice(3, 9) || '0').padEnd(6, '0'));
  return BigInt(ms) * 1_000_000n + subMs;
}

function toLease(row: LeaseRow): Lease {
  return { id: row.id, createdAt: row.createdAt, labels: row.labels };
}

function requireNamespace(ctx: RequestContext): string {
  if (!ctx.namespace) throw failedPrecondition('namespace is required');
  return ctx.namespace;
}

/** containerd's parseLeaseResource: the canonical id of a resource of a supported type. */
function resourceKey(resource: LeaseResource): LeaseResource {
  const keys = resource.type.split('/');
  switch (keys[0]) {
    case RESOURCE_CONTENT:
    case RESOURCE_INGESTS:
      if (keys.length !== 1) throw invalidArgument(`invalid resource type ${resource.type}`);
      if (keys[0] === RESOURCE_CONTENT) {
        try {
          validateDigest(resource.id);
        } catch (e) {
          throw invalidArgument(`invalid content resource id ${resource.id}: ${(e as Error).message}`);
        }
      }
      return resource;
    case 'snapshots':
      if (keys.length !== 2) throw invalidArgument(`invalid snapshot resource type ${resource.type}`);
      return resource;
    default:
      throw notImplemented(`resource type ${resource.type} not supported yet`);
  }
}

export class LeaseManager {
  /** Called after each deletion (a lease or a resource), so the collector can run after a threshold. */
  onDeletion: () => void = () => undefined;

  constructor(
    private readonly db: LeaseDB,
    private readonly meta: MetadataDB,
  ) {}

  /** Creates a lease; without an id, a random one as containerd's leases.WithRandomID. */
  create(ctx: RequestContext, id: string, labels: Labels = {}): Lease {
    const namespace = requireNamespace(ctx);
    id ||= `${nowNs() % 1_000_000_000n}-${randomBytes(3).toString('base64url')}`;
    return this.meta.transaction(() => {
      if (this.db.get(namespace, id)) throw alreadyExists(`lease ${JSON.stringify(id)}: already exists`);
      const row = { namespace, id, createdAt: nowNs(), labels: { ...labels } };
      this.db.insert(row);
      return toLease(row);
    });
  }

  delete(ctx: RequestContext, id: string): void {
    const namespace = requireNamespace(ctx);
    if (!this.meta.transaction(() => this.db.delete(namespace, id))) throw notFound(`lease ${JSON.stringify(id)}: not found`);
    this.onDeletion();
  }

  list(ctx: RequestContext, filters: string[]): Lease[] {
    const namespace = requireNamespace(ctx);
    const filter = parseFilters(filters);
    return this.db
      .list(namespace)
      .map(toLease)
      .filter((lease) => filter.match(leaseAdaptor(lease)));
  }

  addResource(ctx: RequestContext, id: string, resource: LeaseResource): void {
    this.changeResource(ctx, id, resource, (row) => this.db.addResource(row));
  }

  deleteResource(ctx: RequestContext, id: string, resource: LeaseResource): void {
    this.changeResource(ctx, id, resource, (row) => this.db.deleteResource(row));
    this.onDeletion();
  }

  listResources(ctx: RequestContext, id: string): LeaseResource[] {
    const namespace = requireNamespace(ctx);
    this.mustExist(namespace, id);
    return this.db.listResources(namespace, id).map((r) => ({ id: r.id, type: r.type }));
  }

  // ---- for the content store: the containerd-lease header of content requests ----

  /**
   * An ingest was opened: under the request's lease it lives as long as that
   * lease; without one it expires by age. Run inside the store's transaction.
   */
  holdIngest(ctx: RequestContext, ref: string): void {
    if (!ctx.namespace) return;
    const lease = this.leaseOf(ctx);
    if (lease) this.db.addResource({ namespace: ctx.namespace, lease, type: RESOURCE_INGESTS, id: ref });
    this.db.setIngestLeased(ctx.namespace, ref, lease !== undefined);
  }

  /** An ingest was committed or aborted: the request's lease stops holding it. */
  releaseIngest(ctx: RequestContext, ref: string): void {
    if (!ctx.namespace) return;
    if (ctx.lease) this.db.deleteResource({ namespace: ctx.namespace, lease: ctx.lease, type: RESOURCE_INGESTS, id: ref });
    this.db.setIngestLeased(ctx.namespace, ref, false);
  }

  /** An ingest is gone (discarded, aborted, expired): it no longer counts as leased. */
  forgetIngest(namespace: string, ref: string): void {
    this.db.setIngestLeased(namespace, ref, false);
  }

  /** Content was committed (or found already there) under the request's lease. */
  holdContent(ctx: RequestContext, digest: string): void {
    const lease = this.leaseOf(ctx);
    if (lease) this.db.addResource({ namespace: ctx.namespace, lease, type: RESOURCE_CONTENT, id: digest });
  }

  /** Content was deleted by a request carrying a lease: that lease stops holding it, as in containerd. */
  releaseContent(ctx: RequestContext, digest: string): void {
    if (ctx.namespace && ctx.lease) this.db.deleteResource({ namespace: ctx.namespace, lease: ctx.lease, type: RESOURCE_CONTENT, id: digest });
  }

  /** The request's lease, created (implicit) when unknown; undefined without a namespace or lease. */
  private leaseOf(ctx: RequestContext): string | undefined {
    if (!ctx.namespace || !ctx.lease) return undefined;
    if (!this.db.get(ctx.namespace, ctx.lease)) {
      this.db.insert({ namespace: ctx.namespace, id: ctx.lease, createdAt: nowNs(), labels: { [LABEL_IMPLICIT]: 'true' } });
    }
    return ctx.lease;
  }

  /** Checks the lease and the resource (in that order, as containerd), then applies change to its row. */
  private changeResource(ctx: RequestContext, id: string, resource: LeaseResource, change: (row: ResourceRow) => void): void {
    const namespace = requireNamespace(ctx);
    this.meta.transaction(() => {
      this.mustExist(namespace, id);
      const key = resourceKey(resource);
      change({ namespace, lease: id, type: key.type, id: key.id });
    });
  }

  private mustExist(namespace: string, id: string): void {
    if (!this.db.get(namespace, id)) throw notFound(`lease ${JSON.stringify(id)}: not found`);
  }
}
