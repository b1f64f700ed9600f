import type { Command } from 'commander';
import { commandConfig, withReadOnlyMetadata } from './open';
import { addJsonOption, formatBytes, formatNamespace, formatTable, printJson, printText, type OutputFlags } from './output';

interface DuFlags extends OutputFlags {
  namespace?: string;
}

export function registerDu(program: Command): void {
  addJsonOption(
    program
      .command('du')
      .description('space used: content per namespace, and the blobs stored once for all of them')
      .option('-n, --namespace <name>', 'only this namespace ("" is the global one)'),
  )
    .addHelpText(
      'after',
      `
A blob referenced by two namespaces counts in both namespaces but is stored
once: the "stored" line is what the blobs take on disk. Ingests are uploads
in progress or abandoned (gc removes stale ones).
Reads the metadata database read-only: safe while the server runs.`,
    )
    .action((flags: DuFlags, command: Command) => {
      const report = withReadOnlyMetadata(commandConfig(command), (db) => {
        const ingests = new Map<string, number>();
        for (const row of db.allIngests()) ingests.set(row.namespace, (ingests.get(row.namespace) ?? 0) + 1);
        const usage = new Map(db.usage().map((u) => [u.namespace, u]));
        const names = [...new Set([...usage.keys(), ...ingests.keys()])].sort();
        const namespaces = names
          .filter((namespace) => flags.namespace === undefined || namespace === flags.namespace)
          .map((namespace) => ({ namespace, blobs: usage.get(namespace)?.count ?? 0, bytes: usage.get(namespace)?.bytes ?? 0, ingests: ingests.get(namespace) ?? 0 }));
        const stored = db.blobTotals();
        return { namespaces, stored: { blobs: stored.count, bytes: stored.bytes } };
      });
      if (flags.json) {
        printJson(report);
        return;
      }
      const table = formatTable(
        ['NAMESPACE', 'BLOBS', 'SIZE', 'INGESTS'],
        report.namespaces.map((n) => [formatNamespace(n.namespace), String(n.blobs), formatBytes(n.bytes), String(n.ingests)]),
      );
      printText(`${table}\nstored: ${report.stored.blobs} blobs, ${formatBytes(report.stored.bytes)} (${report.stored.bytes} bytes)`);
    });
}
