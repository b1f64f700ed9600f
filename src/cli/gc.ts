import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GarbageCollectorClient, type CollectResponse } from '../../generated/contentd/services/gc/v1/gc';
import type { Config } from '../config/config';
import { RootLockedError } from '../db/root-lock';
import { createLogger } from '../log';
import { openStore, type OpenedStore } from '../server/server';
import { Collector, type GcReport } from '../store/gc';
import { commandConfig } from './open';
import { addJsonOption, formatBytes, formatNamespace, formatTable, printJson, printText, type OutputFlags } from './output';

interface GcFlags extends OutputFlags {
  dryRun?: boolean;
}

/** Where the pass ran: in the server holding the root, or in this process with the root locked. */
type Via = { by: 'server'; address: string } | { by: 'offline' };

export function registerGc(program: Command): void {
  addJsonOption(
    program
      .command('gc')
      .description("garbage-collect what namespaced clients no longer reference (containerd's rules)")
      .option('--dry-run', 'report what would be removed, remove nothing')
      .option('--address <socket>', "socket of the running server to ask (default: the configuration's grpc.address)"),
  )
    .addHelpText(
      'after',
      `
Content is kept while a root reaches it: content labelled containerd.io/gc.root,
a lease not past its containerd.io/gc.expire time, an ingest written within
[gc] ingest_expiry or open right now; containerd.io/gc.ref.content* labels
extend the reach. Everything else of namespaced clients goes: content rows,
ingests, expired leases, then blobs no namespace references, rows and files.
Content written without a namespace (containerd as a proxy) is never collected.

While a server runs, the server collects (through its GarbageCollector
service on its socket); otherwise this command locks the root and collects
itself. Two collections never run at once on one root.`,
    )
    .action(async (flags: GcFlags, command: Command) => {
      const config = commandConfig(command);
      const { report, via } = await collect(config, flags);
      if (flags.json) printJson({ via, ...report });
      else printText(describe(report, via));
    });
}

async function collect(config: Config, flags: GcFlags): Promise<{ report: GcReport; via: Via }> {
  if (!existsSync(join(config.root, 'metadata.db'))) throw new Error(`no content store at ${config.root}; pass --root or --config`);
  const dryRun = flags.dryRun ?? false;
  let opened: OpenedStore;
  try {
    opened = await openStore(config, createLogger(config.log));
  } catch (e) {
    if (!(e instanceof RootLockedError)) throw e;
    // --address, through the common flags, is already in config.grpc.address.
    const address = config.grpc.address;
    return { report: await askServer(address, dryRun, config.root), via: { by: 'server', address } };
  }
  try {
    const report = await new Collector(opened.store, { ingestExpiryMs: config.gc.ingestExpiry }).collect({ dryRun });
    return { report, via: { by: 'offline' } };
  } finally {
    await opened.close();
  }
}

function askServer(address: string, dryRun: boolean, root: string): Promise<GcReport> {
  const client = new GarbageCollectorClient(`unix:${address}`, credentials.createInsecure());
  return new Promise<GcReport>((resolve, reject) => {
    client.collect({ dryRun }, new Metadata(), (err: ServiceError | null, res: CollectResponse) => {
      client.close();
      if (!err) resolve(fromProto(res));
      else if (err.code === status.UNAVAILABLE && /connect|No connection/i.test(err.details)) {
        reject(new Error(`the store at ${root} is in use by another contentd process, and no server answers at ${address}: pass --address with the running server's socket, or wait for the other command to finish`));
      } else reject(new Error(`the server at ${address} could not collect: ${err.details}`));
    });
  });
}

function fromProto(res: CollectResponse): GcReport {
  const startedAt = BigInt(res.startedAt?.seconds ?? 0) * 1_000_000_000n + BigInt(res.startedAt?.nanos ?? 0);
  return { ...res, startedAt };
}

function describe(report: GcReport, via: Via): string {
  const verb = report.dryRun ? 'would remove' : 'removed';
  const where = via.by === 'server' ? `by the server at ${via.address}` : 'offline';
  const summary =
    `${verb} ${report.content.length} content rows, ${report.ingests.length} ingests, ${report.leases.length} expired leases, ` +
    `${report.blobs.length} blobs (${formatBytes(report.bytesReclaimed)}) in ${Math.round(report.durationMs)} ms, ${where}`;
  const rows = [
    ...report.content.map((c) => ['content', formatNamespace(c.namespace), c.digest]),
    ...report.ingests.map((i) => ['ingest', formatNamespace(i.namespace), i.ref]),
    ...report.leases.map((l) => ['lease', formatNamespace(l.namespace), l.id]),
    ...report.blobs.map((b) => ['blob', '', `${b.digest} (${formatBytes(b.size)})`]),
  ];
  return rows.length === 0 ? summary : `${formatTable(['KIND', 'NAMESPACE', 'WHAT'], rows)}\n${summary}`;
}
