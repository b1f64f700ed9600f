import { MiB } from './data';
import type { BenchDriver } from './driver';
import { timed } from './timing';
import type { PullFixture } from './pull';
import type { Target, TargetName } from './targets';
import type { WarmUpSizes } from './warmup';

/** How big each row's work is: the figures, or tiny ones for --quick. */
export interface Sizes {
  bigBlob: number;
  /** The blob of the memory rows: RSS must not grow with blob size. */
  hugeBlob: number;
  smallBlobs: number;
  smallBlob: number;
  infoCalls: number;
  /** Requests in flight at once in the small-blob rows. */
  concurrency: number;
  /** Layers of the pulled image, and bytes of file content in each. */
  pullLayers: number;
  pullLayerSize: number;
  /** Untimed work each newly started target serves first (bench/warmup.ts). */
  warmUp: WarmUpSizes;
}

export const FULL_SIZES: Sizes = {
  bigBlob: 512 * MiB,
  hugeBlob: 1024 * MiB,
  smallBlobs: 2000,
  smallBlob: 4096,
  infoCalls: 50_000,
  concurrency: 8,
  pullLayers: 3,
  pullLayerSize: 50 * MiB,
  warmUp: { blobs: 2000, infoCalls: 20_000, bigBlob: 64 * MiB },
};

export const QUICK_SIZES: Sizes = {
  bigBlob: 3 * MiB + 1234,
  hugeBlob: 4 * MiB,
  smallBlobs: 20,
  smallBlob: 4096,
  infoCalls: 50,
  concurrency: 4,
  pullLayers: 2,
  pullLayerSize: MiB,
  warmUp: { blobs: 10, infoCalls: 50, bigBlob: MiB },
};

/** A blob an earlier row wrote. */
export interface Written {
  digest: string;
  size: number;
}

/** What earlier rows left in a target for later rows to read. */
export interface TargetState {
  big?: Written;
  huge?: Written;
  small?: string[];
}

export interface RowContext {
  target: Target;
  driver: BenchDriver;
  namespace: string;
  sizes: Sizes;
  state: TargetState;
  /** Unique per measurement: every ingest writes new content. */
  seed: number;
  pullFixture(): Promise<PullFixture>;
}

export interface Measurement {
  /** In the row's unit; higher is better. */
  value: number;
  seconds: number;
}

export interface Row {
  id: string;
  title(sizes: Sizes): string;
  unit: string;
  targets: readonly TargetName[];
  /** Each run gets a newly started target (a pull must not find its content already there). */
  fresh?: boolean;
  /** The work is done by another program (ctr), not the benchmark's own client. */
  externalClient?: boolean;
  /** The minimum ratios against containerd's own store. */
  goals: Partial<Record<'direct' | 'proxy', number>>;
  /** The row writes hundreds of MiB of new content or thousands of new files: clean page-cache pages are dropped first (bench/proc.ts, dropCleanPages). */
  writesNewPages?: boolean;
  /** Untimed work before the measurement (and outside its CPU and memory figures). */
  prepare?(ctx: RowContext): Promise<void>;
  measure(ctx: RowContext): Promise<Measurement>;
}

const ALL: readonly TargetName[] = ['direct', 'containerd', 'proxy', 'proxy-ref'];
const THROUGH_CONTAINERD = 0.9;

/** A size as people write it: 512 MiB, 4 KiB, 3.0 MiB. */
export function size(bytes: number): string {
  const units: Array<[string, number]> = [['GiB', 1 << 30], ['MiB', MiB], ['KiB', 1024]];
  for (const [unit, scale] of units) {
    if (bytes >= scale) return Number.isInteger(bytes / scale) ? `${bytes / scale} ${unit}` : `${(bytes / scale).toFixed(1)} ${unit}`;
  }
  return `${bytes} B`;
}

export async function ingest(ctx: RowContext, key: 'big' | 'huge', bytes: number): Promise<Measurement> {
  const { digest, seconds } = await ctx.driver.ingest(`bench-${key}-${ctx.seed}`, bytes, ctx.seed);
  ctx.state[key] = { digest, size: bytes };
  return { value: bytes / MiB / seconds, seconds };
}

/** The blob an ingest row left, written now (untimed) when that row did not run. */
export async function blobOf(ctx: RowContext, key: 'big' | 'huge', bytes: number): Promise<Written> {
  if (!ctx.state[key]) await ingest(ctx, key, bytes);
  return ctx.state[key]!;
}

/** Reads a whole blob through one ReaderAt in chunk-sized ReadAt calls, as containerd's unpack does. */
export async function readBlob(ctx: RowContext, key: 'big' | 'huge', bytes: number, chunk: number): Promise<Measurement> {
  const blob = await blobOf(ctx, key, bytes);
  const seconds = await ctx.driver.read(blob.digest, blob.size, chunk);
  return { value: blob.size / MiB / seconds, seconds };
}

/**
 * Brings a read row's blob into the page cache, as an ingest just before
 * leaves it (the pages an earlier target's ingest dropped, see
 * writesNewPages), by reading it once, untimed.
 */
async function warmBlob(ctx: RowContext, key: 'big' | 'huge', bytes: number): Promise<void> {
  const blob = await blobOf(ctx, key, bytes);
  await ctx.driver.read(blob.digest, blob.size, MiB);
}

async function commitSmall(ctx: RowContext): Promise<Measurement> {
  const { digests, seconds } = await ctx.driver.commitSmall(`bench-small-${ctx.seed}`, ctx.sizes.smallBlobs, ctx.sizes.smallBlob, ctx.sizes.concurrency);
  ctx.state.small = digests;
  return { value: digests.length / seconds, seconds };
}

async function smallDigests(ctx: RowContext): Promise<string[]> {
  if (!ctx.state.small) await commitSmall(ctx);
  return ctx.state.small!;
}

export const ROWS: readonly Row[] = [
  {
    id: 'ingest',
    title: (s) => `ingest ${size(s.bigBlob)}, 1 MiB writes`,
    unit: 'MiB/s',
    targets: ALL,
    goals: { direct: 2.0, proxy: THROUGH_CONTAINERD },
    writesNewPages: true,
    measure: (ctx) => ingest(ctx, 'big', ctx.sizes.bigBlob),
  },
  {
    id: 'read-1m',
    title: (s) => `read ${size(s.bigBlob)}, 1 MiB ReadAt`,
    unit: 'MiB/s',
    targets: ALL,
    goals: { direct: 2.0, proxy: THROUGH_CONTAINERD },
    prepare: (ctx) => warmBlob(ctx, 'big', ctx.sizes.bigBlob),
    measure: (ctx) => readBlob(ctx, 'big', ctx.sizes.bigBlob, MiB),
  },
  {
    id: 'read-32k',
    title: (s) => `read ${size(s.bigBlob)}, 32 KiB ReadAt`,
    unit: 'MiB/s',
    targets: ALL,
    goals: { direct: 1.5, proxy: THROUGH_CONTAINERD },
    prepare: (ctx) => warmBlob(ctx, 'big', ctx.sizes.bigBlob),
    measure: (ctx) => readBlob(ctx, 'big', ctx.sizes.bigBlob, 32 * 1024),
  },
  {
    id: 'commit-4k',
    title: (s) => `commit ${s.smallBlobs} × ${size(s.smallBlob)} blobs`,
    unit: 'blobs/s',
    targets: ALL,
    goals: { direct: 2.0, proxy: THROUGH_CONTAINERD },
    writesNewPages: true,
    measure: commitSmall,
  },
  {
    id: 'info',
    title: () => 'Info',
    unit: 'calls/s',
    targets: ALL,
    goals: { direct: 1.5, proxy: THROUGH_CONTAINERD },
    measure: async (ctx) => {
      const digests = await smallDigests(ctx);
      const seconds = await ctx.driver.info(digests, ctx.sizes.infoCalls, ctx.sizes.concurrency);
      return { value: ctx.sizes.infoCalls / seconds, seconds };
    },
  },
  {
    id: 'read-4k',
    title: (s) => `read ${size(s.smallBlob)} blobs (Info + Read)`,
    unit: 'blobs/s',
    targets: ALL,
    goals: { proxy: THROUGH_CONTAINERD },
    measure: async (ctx) => {
      const digests = await smallDigests(ctx);
      const seconds = await ctx.driver.readSmall(digests, ctx.sizes.concurrency);
      return { value: digests.length / seconds, seconds };
    },
  },
  {
    id: 'ingest-1g',
    title: (s) => `ingest ${size(s.hugeBlob)} (memory)`,
    unit: 'MiB/s',
    targets: ALL,
    goals: {},
    writesNewPages: true,
    measure: (ctx) => ingest(ctx, 'huge', ctx.sizes.hugeBlob),
  },
  {
    id: 'read-1g',
    title: (s) => `read ${size(s.hugeBlob)}, 1 MiB ReadAt (memory)`,
    unit: 'MiB/s',
    targets: ALL,
    goals: {},
    prepare: (ctx) => warmBlob(ctx, 'huge', ctx.sizes.hugeBlob),
    measure: (ctx) => readBlob(ctx, 'huge', ctx.sizes.hugeBlob, MiB),
  },
  {
    id: 'pull',
    title: (s) => `ctr images pull + unpack, ${size(s.pullLayers * s.pullLayerSize)} image`,
    unit: 'MiB/s',
    targets: ['containerd', 'proxy', 'proxy-ref'],
    fresh: true,
    externalClient: true,
    writesNewPages: true,
    goals: { proxy: 0.95 },
    measure: async (ctx) => {
      const fixture = await ctx.pullFixture();
      const containerd = ctx.target.containerd!;
      const seconds = await timed(async () => {
        await containerd.ctrOk(['images', 'pull', '--plain-http', '--snapshotter', containerd.snapshotter, fixture.ref], { namespace: ctx.namespace, timeoutMs: 600_000 });
      });
      return { value: fixture.size / MiB / seconds, seconds };
    },
  },
];

/** Peak RSS allowed for the content store while streaming the 1 GiB blob. */
export const RSS_LIMIT = 200 * MiB;
export const MEMORY_ROWS = ['ingest-1g', 'read-1g'];
