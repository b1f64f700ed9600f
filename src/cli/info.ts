import type { Command } from 'commander';
import { validateDigest } from '../store/digest';
import { commandConfig, withReadOnlyMetadata } from './open';
import { addJsonOption, formatBytes, formatLabels, formatNamespace, formatTime, isoTime, printJson, printText, referenceRecord, type OutputFlags } from './output';

interface InfoFlags extends OutputFlags {
  namespace?: string;
}

export function registerInfo(program: Command): void {
  addJsonOption(
    program
      .command('info')
      .description('show one blob: size, when it was stored, and each namespace that references it with its labels')
      .argument('<digest>', 'e.g. sha256:0123…')
      .option('-n, --namespace <name>', 'only this namespace ("" is the global one)'),
  )
    .addHelpText('after', '\nExits 1 when the digest is not in the store. Reads the metadata database read-only: safe while the server runs.')
    .action((digest: string, flags: InfoFlags, command: Command) => {
      validateDigest(digest);
      const { blob, refs } = withReadOnlyMetadata(commandConfig(command), (db) => ({
        blob: db.getBlob(digest),
        refs: db.contentByDigest(digest).filter((row) => flags.namespace === undefined || row.namespace === flags.namespace),
      }));
      if (!blob || (flags.namespace !== undefined && refs.length === 0)) {
        throw new Error(`content ${digest}: not found${flags.namespace !== undefined ? ` in namespace ${JSON.stringify(flags.namespace)}` : ''}`);
      }
      if (flags.json) {
        printJson({
          digest,
          size: blob.size,
          storedAt: isoTime(blob.createdAt),
          namespaces: refs.map((row) => referenceRecord(row.namespace, row)),
        });
        return;
      }
      const lines = [`digest:     ${digest}`, `size:       ${blob.size} (${formatBytes(blob.size)})`, `stored:     ${formatTime(blob.createdAt)}`];
      if (refs.length === 0) lines.push('namespaces: none (unreferenced: garbage collection will remove it)');
      for (const row of refs) {
        lines.push('', `namespace:  ${formatNamespace(row.namespace)}`, `  created:  ${formatTime(row.createdAt)}`, `  updated:  ${formatTime(row.updatedAt)}`, `  labels:   ${formatLabels(row.labels)}`);
      }
      printText(lines.join('\n'));
    });
}
