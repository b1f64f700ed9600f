import type { ServiceImplementation } from '../rpc/types';
import type {
  AddResourceRequest,
  CreateRequest,
  DeleteRequest,
  DeleteResourceRequest,
  Lease as ProtoLease,
  ListRequest,
  ListResourcesRequest,
} from '../../generated/containerd/services/leases/v1/leases';
import { invalidArgument } from '../store/errors';
import type { GcScheduler } from '../store/gc';
import type { Lease, LeaseManager, LeaseResource } from '../store/leases';
import { toTimestamp } from './convert';
import { unary, type HandlerEnv } from './handlers';

export const LEASES_SERVICE_NAME = 'containerd.services.leases.v1.Leases';

function toProtoLease(lease: Lease): ProtoLease {
  return { id: lease.id, createdAt: toTimestamp(lease.createdAt), labels: lease.labels };
}

function resourceOf(req: { resource?: LeaseResource }): LeaseResource {
  if (!req.resource) throw invalidArgument('resource is required');
  return req.resource;
}

/** containerd's Leases gRPC service: translates messages; Delete with sync waits for a collection. */
export function leasesService(leases: LeaseManager, gc: GcScheduler, env: HandlerEnv): ServiceImplementation {
  const name = 'Leases';
  return {
    create: unary(env, name, 'Create', (req: CreateRequest, ctx) => ({ lease: toProtoLease(leases.create(ctx, req.id, req.labels)) })),

    delete: unary(env, name, 'Delete', async (req: DeleteRequest, ctx) => {
      leases.delete(ctx, req.id);
      if (req.sync) await gc.run('lease deleted with sync');
      return {};
    }),

    list: unary(env, name, 'List', (req: ListRequest, ctx) => ({ leases: leases.list(ctx, req.filters).map(toProtoLease) })),

    addResource: unary(env, name, 'AddResource', (req: AddResourceRequest, ctx) => {
      leases.addResource(ctx, req.id, resourceOf(req));
      return {};
    }),

    deleteResource: unary(env, name, 'DeleteResource', (req: DeleteResourceRequest, ctx) => {
      leases.deleteResource(ctx, req.id, resourceOf(req));
      return {};
    }),

    listResources: unary(env, name, 'ListResources', (req: ListResourcesRequest, ctx) => ({ resources: leases.listResources(ctx, req.id) })),
  };
}

