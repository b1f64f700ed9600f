import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileChunks } from '../blobs/file-chunks';
import { createLogger } from '../log';
import { openStore } from '../server/server';
import { newHash, parseDigest } from '../store/digest';
import { hasGlobalBlob, importVerifiedFile, type ImportOutcome } from '../store/import';
import { commandConfig } from './open';
import { addJsonOption, formatBytes, printJson, printText, type OutputFlags } from './output';
import { createProgress } from './progress';

interface ImportLocalFlags extends OutputFlags {
  copy?: boolean;
}

/** Where containerd's built-in content store keeps its data, under containerd's root. */
const LOCAL_CONTENT_PLUGIN = 'io.containerd.content.v1.content';

interface SourceBlob {
  digest: string;
  path: string;
  size: number;
}

interface Failure {
  path: string;
  reason: string;
}

export function registerImportLocal(program: Command): void {
  addJsonOption(
    program
      .command('import-local')
      .description("bring containerd's local content store into this store (global namespace), verifying every digest")
      .argument('<containerd-root>', `containerd's root (e.g. /var/lib/containerd), or its ${LOCAL_CONTENT_PLUGIN} directory`)
      .option('--copy', 'copy every blob instead of hard-linking it where the filesystem allows'),
  )
    .addHelpText(
      'after',
      `
Writes to the store directly, so the server must be stopped (the command
refuses to run while anything holds the store's root). Every blob is hashed
and imported only if it matches its name. Blobs already in the global
namespace are skipped without being read again: re-running is quick. Hard
links share the bytes with containerd's old store, which containerd never
modifies; use --copy to keep the two independent. "reused" counts blobs whose
bytes the store already had for another namespace.

Exit status: 0 all blobs imported or present, 1 some could not be (listed).`,
    )
    .action(async (source: string, flags: ImportLocalFlags, command: Command) => {
      process.umask(0o077);
      const config = commandConfig(command);
      const blobsDir = findBlobsDir(resolve(source));
      const { blobs, failures } = await listSource(blobsDir);
      const started = Date.now();
      const { store, close } = await openStore(config, createLogger({ ...config.log, level: 'warn' }));
      const counts: Record<ImportOutcome, number> = { present: 0, reused: 0, linked: 0, copied: 0 };
      let bytes = 0;
      try {
        // Presence is decided up front so that the progress total is what will really be read.
        const todo = blobs.filter((blob) => {
          if (!hasGlobalBlob(store, blob.digest)) return true;
          counts.present++;
          return false;
        });
        const progress = todo.length > 0 ? createProgress('import-local: verifying', { total: todo.reduce((n, blob) => n + blob.size, 0), bytes: true }) : undefined;
        for (const blob of todo) {
          const actual = await hashFile(blob.path, blob.digest, (n) => progress?.advance(n));
          if (actual.digest !== blob.digest) {
            failures.push({ path: blob.path, reason: `content hashes to ${actual.digest}` });
            continue;
          }
          counts[await importVerifiedFile(store, blob.path, blob.digest, actual.size, { link: !flags.copy })]++;
          bytes += actual.size;
        }
        progress?.done();
      } finally {
        await close();
      }
      const durationMs = Date.now() - started;
      if (flags.json) {
        printJson({ source: blobsDir, root: config.root, ...counts, bytes, failures, durationMs });
      } else {
        for (const failure of failures) process.stderr.write(`import-local: not imported: ${failure.path}: ${failure.reason}\n`);
        const imported = counts.linked + counts.copied + counts.reused;
        printText(
          `imported ${imported} blobs (${formatBytes(bytes)}) from ${blobsDir} into ${config.root}: ` +
            `${counts.linked} linked, ${counts.copied} copied, ${counts.reused} reused, ${counts.present} already present, ` +
            `${failures.length} failed (${(durationMs / 1000).toFixed(1)} s)`,
        );
      }
      process.exitCode = failures.length > 0 ? 1 : 0;
    });
}

/** The blobs/ directory of a local content store, given containerd's root or the plugin's directory. */
function findBlobsDir(source: string): string {
  for (const candidate of [join(source, LOCAL_CONTENT_PLUGIN, 'blobs'), join(source, 'blobs')]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`no containerd content store at ${source} (expected ${join(source, LOCAL_CONTENT_PLUGIN, 'blobs')})`);
}

/** Every regular file under blobs/<algorithm>/ named as a digest; anything else is a failure to report. */
async function listSource(blobsDir: string): Promise<{ blobs: SourceBlob[]; failures: Failure[] }> {
  const blobs: SourceBlob[] = [];
  const failures: Failure[] = [];
  for (const entry of await readdir(blobsDir, { withFileTypes: true })) {
    const algorithm = entry.name;
    if (!entry.isDirectory()) {
      failures.push({ path: join(blobsDir, algorithm), reason: 'not a digest algorithm directory' });
      continue;
    }
    for (const name of await readdir(join(blobsDir, algorithm))) {
      const path = join(blobsDir, algorithm, name);
      const digest = `${algorithm}:${name}`;
      try {
        parseDigest(digest);
      } catch (e) {
        failures.push({ path, reason: e instanceof Error ? e.message : String(e) });
        continue;
      }
      const stats = await lstat(path);
      if (stats.isFile()) blobs.push({ digest, path, size: stats.size });
      else failures.push({ path, reason: 'not a regular file' });
    }
  }
  return { blobs, failures };
}

async function hashFile(path: string, digest: string, progressed: (bytes: number) => void): Promise<{ digest: string; size: number }> {
  const { algorithm } = parseDigest(digest);
  const hash = newHash(algorithm);
  let size = 0;
  for await (const chunk of fileChunks(path)) {
    hash.update(chunk);
    size += chunk.length;
    progressed(chunk.length);
  }
  return { digest: `${algorithm}:${hash.digest('hex')}`, size };
}
