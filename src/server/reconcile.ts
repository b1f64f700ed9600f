import type { Logger } from 'winston';
import type { BlobBackend } from '../blobs/backend';
import type { MetadataDB } from '../db/metadata';
import { CRASH_LEFTOVERS, checkStore, type Problem } from '../store/fsck';

/**
 * Start-up clean-up after a crash, before anything is served: staged files
 * whose ingest is gone, blob files whose commit never reached SQLite (that
 * commit was never acknowledged), rows nothing can reach. Damage a crash
 * cannot explain (rows without bytes, foreign files) is left for
 * `contentd fsck` and logged.
 */
export async function reconcile(db: MetadataDB, backend: BlobBackend, logger: Logger): Promise<Problem[]> {
  const { problems } = await checkStore(db, backend, { verify: 'none', repair: (problem) => CRASH_LEFTOVERS.has(problem.kind) });
  const cleared = problems.filter((problem) => problem.repaired);
  const left = problems.filter((problem) => !problem.repaired);
  if (cleared.length > 0) logger.warn('removed leftovers of interrupted work', { count: cleared.length, kinds: countKinds(cleared) });
  if (left.length > 0) {
    logger.error('the store is damaged: run `contentd fsck` with the server stopped', { count: left.length, kinds: countKinds(left), first: left[0]!.subject });
  }
  return problems;
}

function countKinds(problems: Problem[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { kind } of problems) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
