import type { ServiceImplementation } from '../rpc/types';
import type { CollectRequest, CollectResponse } from '../../generated/contentd/services/gc/v1/gc';
import type { GcReport, GcScheduler } from '../store/gc';
import { toTimestamp } from './convert';
import { unary, type HandlerEnv } from './handlers';

export const GC_SERVICE_NAME = 'contentd.services.gc.v1.GarbageCollector';

export function toProtoReport(report: GcReport): CollectResponse {
  return { ...report, startedAt: toTimestamp(report.startedAt) };
}

/** contentd's own GarbageCollector service, for `contentd gc` while the server holds the root. */
export function gcService(gc: GcScheduler, env: HandlerEnv): ServiceImplementation {
  return {
    collect: unary(env, 'GarbageCollector', 'Collect', async (req: CollectRequest) =>
      toProtoReport(req.dryRun ? await gc.collector.collect({ dryRun: true }) : await gc.run('requested')),
    ),
  };
}

