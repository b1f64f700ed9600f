import type { Command } from 'commander';
import { infoAdaptor, parseFilters } from '../store/filters';
import { commandConfig, withReadOnlyMetadata } from './open';
import { addJsonOption, contentRecord, formatBytes, formatLabels, formatNamespace, formatTable, formatTime, printJson, printText, type OutputFlags } from './output';

interface LsFlags extends OutputFlags {
  namespace?: string;
  quiet?: boolean;
}

export function registerLs(program: Command): void {
  addJsonOption(
    program
      .command('ls')
      .description('list content: digest, size, creation time and labels in each namespace')
      .argument('[filters...]', "containerd filters, ORed (as for ctr content ls)")
      .option('-n, --namespace <name>', 'only this namespace ("" is the global one); default: every namespace')
      .option('-q, --quiet', 'print each digest once and nothing else'),
  )
    .addHelpText(
      'after',
      `
Reads the metadata database read-only: safe while the server runs.

Examples:
  contentd ls -n k8s.io
  contentd ls 'labels."containerd.io/gc.root"'
  contentd ls 'digest~=^sha256:ab' --json`,
    )
    .action((filters: string[], flags: LsFlags, command: Command) => {
      const filter = parseFilters(filters);
      const rows = withReadOnlyMetadata(commandConfig(command), (db) =>
        (flags.namespace !== undefined ? [flags.namespace] : db.namespaces()).flatMap((namespace) =>
          [...db.listContent(namespace)].filter((info) => filter.match(infoAdaptor(info))).map((info) => ({ namespace, info })),
        ),
      );
      if (flags.json) printJson(rows.map(({ namespace, info }) => contentRecord(namespace, info)));
      else if (flags.quiet) printText([...new Set(rows.map(({ info }) => info.digest))].join('\n'));
      else
        printText(
          formatTable(
            ['NAMESPACE', 'DIGEST', 'SIZE', 'CREATED', 'LABELS'],
            rows.map(({ namespace, info }) => [formatNamespace(namespace), info.digest, formatBytes(info.size), formatTime(info.createdAt), formatLabels(info.labels)]),
          ),
        );
    });
}
