import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  LeasesClient,
  type CreateRequest,
  type CreateResponse,
  type Lease,
  type ListRequest,
  type ListResourcesRequest,
  type ListResourcesResponse,
  type ListResponse,
  type Resource,
} from '../../generated/containerd/services/leases/v1/leases';
import type { GcReport } from '../../src/store/gc';
import { CLI } from './server';

/** Promise helpers for containerd's Leases service over a real socket, and for `contentd gc`. */

export function leasesClient(address: string): LeasesClient {
  return new LeasesClient(`unix:${address}`, credentials.createInsecure());
}

type Unary<Req, Res> = (req: Req, metadata: Metadata, callback: (err: ServiceError | null, res: Res) => void) => unknown;

function call<C extends Client, Req, Res>(client: C, method: Unary<Req, Res>, req: Req, metadata: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, metadata, (err, res) => (err ? reject(err) : resolve(res))));
}

export async function createLease(client: LeasesClient, metadata: Metadata, id: string, labels: Record<string, string> = {}): Promise<Lease> {
  return (await call<LeasesClient, CreateRequest, CreateResponse>(client, client.create, { id, labels }, metadata)).lease!;
}

export async function deleteLease(client: LeasesClient, metadata: Metadata, id: string, sync = false): Promise<void> {
  await call(client, client.delete, { id, sync }, metadata);
}

export async function listLeases(client: LeasesClient, metadata: Metadata, filters: string[] = []): Promise<Lease[]> {
  return (await call<LeasesClient, ListRequest, ListResponse>(client, client.list, { filters }, metadata)).leases;
}

export async function addResource(client: LeasesClient, metadata: Metadata, id: string, resource: Resource): Promise<void> {
  await call(client, client.addResource, { id, resource }, metadata);
}

export async function deleteResource(client: LeasesClient, metadata: Metadata, id: string, resource: Resource): Promise<void> {
  await call(client, client.deleteResource, { id, resource }, metadata);
}

export async function listResources(client: LeasesClient, metadata: Metadata, id: string): Promise<Resource[]> {
  return (await call<LeasesClient, ListResourcesRequest, ListResourcesResponse>(client, client.listResources, { id }, metadata)).resources;
}

/** containerd's leases.WithExpiration: an RFC 3339 time in the containerd.io/gc.expire label. */
export function expiresIn(ms: number): Record<string, string> {
  return { 'containerd.io/gc.expire': new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z') };
}

/** `contentd gc --json`: the collector's report (bigints as strings), and where it ran. */
export type GcRun = Omit<GcReport, 'startedAt'> & {
  startedAt: string;
  via: { by: 'server'; address: string } | { by: 'offline' };
};

/** Runs `contentd gc --json` on a root (asking its server when one runs there). */
export async function runGc(root: string, options: { dryRun?: boolean; args?: string[] } = {}): Promise<GcRun> {
  const args = [CLI, '--root', root, 'gc', '--json', ...(options.dryRun ? ['--dry-run'] : []), ...(options.args ?? [])];
  const { stdout } = await promisify(execFile)(process.execPath, args, { encoding: 'utf8' });
  return JSON.parse(stdout) as GcRun;
}
