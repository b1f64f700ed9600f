import type { Command } from 'commander';
import { openBlobBackend } from '../blobs/open';
import { MetadataDB } from '../db/metadata';
import { lockRoot } from '../db/root-lock';
import { checkStore, type FsckProgress, type FsckReport } from '../store/fsck';
import { commandConfig, existingMetadataPath } from './open';
import { addJsonOption, formatBytes, printJson, printText, type OutputFlags } from './output';
import { createProgress, type Progress } from './progress';

interface FsckFlags extends OutputFlags {
  repair?: boolean;
  quick?: boolean;
}

/** e2fsck's exit codes, which scripts already know how to read. */
const EXIT_CLEAN = 0;
const EXIT_REPAIRED = 1;
const EXIT_PROBLEMS_LEFT = 4;

export function registerFsck(program: Command): void {
  addJsonOption(
    program
      .command('fsck')
      .description('check the store: re-hash every blob, match blob files to rows, find ingest leftovers')
      .option('--repair', 'fix what can be fixed: quarantine corrupt blobs, drop rows whose bytes are gone, remove leftovers (needs the server stopped)')
      .option('--quick', 'compare blob sizes instead of re-hashing'),
  )
    .addHelpText(
      'after',
      `
Without --repair nothing is changed, and the check is safe while a server
runs. Corrupt blobs are moved to <root>/quarantine, never deleted; clients
then get NotFound and fetch them again.
Exit status: 0 no problems, 1 problems found and all repaired, 4 problems left.`,
    )
    .action(async (flags: FsckFlags, command: Command) => {
      const config = commandConfig(command);
      const path = existingMetadataPath(config);
      // Repairs race with a server's commits and deletes; checking alone does not.
      const lock = flags.repair ? lockRoot(config.root) : undefined;
      const db = new MetadataDB(path, { readonly: !flags.repair });
      const backend = await openBlobBackend(config, { exclusive: Boolean(flags.repair), uncached: true });
      let progress: Progress | undefined;
      let shown = 0;
      const onProgress = (p: FsckProgress): void => {
        progress ??= createProgress('verifying blobs', { total: p.bytesTotal, bytes: true });
        progress.advance(p.bytesDone - shown);
        shown = p.bytesDone;
      };
      try {
        const report = await checkStore(db, backend, {
          verify: flags.quick ? 'size' : 'digest',
          repair: flags.repair ? () => true : undefined,
          onProgress: flags.json ? undefined : onProgress,
        });
        progress?.done(`${report.blobs} blobs`);
        if (flags.json) printJson({ root: config.root, ...report });
        else printText(describe(report, Boolean(flags.repair)));
        const left = report.problems.filter((problem) => !problem.repaired).length;
        process.exitCode = report.problems.length === 0 ? EXIT_CLEAN : left === 0 ? EXIT_REPAIRED : EXIT_PROBLEMS_LEFT;
      } finally {
        await backend.close();
        db.close();
        lock?.release();
      }
    });
}

function describe(report: FsckReport, repairing: boolean): string {
  const lines = report.problems.map((problem) => {
    const where = problem.namespace !== undefined ? ` (namespace ${JSON.stringify(problem.namespace)})` : '';
    const fix = problem.repaired ? ` -> ${problem.repaired}` : '';
    return `${problem.kind.padEnd(16)} ${problem.subject}${where}: ${problem.detail}${fix}`;
  });
  const repaired = report.problems.filter((problem) => problem.repaired).length;
  const summary = `checked ${report.blobs} blobs (${formatBytes(report.bytes)}) and ${report.ingests} ingests: ${report.problems.length} problems`;
  const tail = repairing ? `, ${repaired} repaired` : report.problems.length > 0 ? '; run with --repair to fix them' : '';
  return [...lines, summary + tail].join('\n');
}
