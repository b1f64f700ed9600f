import { MiB } from './data';
import { MEMORY_ROWS, RSS_LIMIT, type Row, type Sizes } from './rows';
import type { ClientName } from './driver';
import { TARGET_NAMES, type TargetName } from './targets';

/** Every measurement of one row on one target. */
export interface Samples {
  values: number[];
  seconds: number[];
  /** Peak RSS of the content store's process during each run, bytes. */
  peakRss: number[];
  /** CPU seconds the content store's process used during each run. */
  cpuSeconds: number[];
  /** CPU seconds containerd used passing the calls on, for the targets behind it (proxy, proxy-ref); empty for the others. */
  hopCpuSeconds: number[];
  /**
   * The benchmark client's own CPU time over the measurement's wall time (1 =
   * one core busy throughout). Near 1, the row measures the client as much
   * as the store: no store can be much faster through it.
   */
  clientCpuShare: number[];
}

export interface RowResult {
  row: Row;
  samples: Partial<Record<TargetName, Samples>>;
}

export interface ReportInput {
  machine: string;
  command: string;
  client: ClientName;
  runs: number;
  sizes: Sizes;
  results: RowResult[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summary(samples: Samples | undefined) {
  if (!samples || samples.values.length === 0) return undefined;
  return {
    median: median(samples.values),
    runs: samples.values,
    seconds: samples.seconds,
    peakRssBytes: Math.max(...samples.peakRss),
    storeCpuSeconds: median(samples.cpuSeconds),
    hopCpuSeconds: samples.hopCpuSeconds.length ? median(samples.hopCpuSeconds) : undefined,
    clientCpuShare: median(samples.clientCpuShare),
  };
}

/** The targets compared with containerd's own store. */
type Compared = 'direct' | 'proxy' | 'proxy-ref';

/** target ÷ containerd's own store, on medians. */
function ratio(result: RowResult, target: Compared): number | undefined {
  const ours = summary(result.samples[target]);
  const theirs = summary(result.samples.containerd);
  return ours && theirs ? ours.median / theirs.median : undefined;
}

export function toJson(input: ReportInput): unknown {
  return {
    machine: input.machine,
    command: input.command,
    client: input.client,
    runs: input.runs,
    sizes: input.sizes,
    rssLimitBytes: RSS_LIMIT,
    rows: input.results.map((result) => ({
      id: result.row.id,
      title: result.row.title(input.sizes),
      unit: result.row.unit,
      targets: Object.fromEntries(Object.entries(result.samples).map(([name, samples]) => [name, summary(samples)])),
      ratios: { direct: ratio(result, 'direct') ?? null, proxy: ratio(result, 'proxy') ?? null, proxyRef: ratio(result, 'proxy-ref') ?? null },
      goals: result.row.goals,
    })),
  };
}

const fixed = (value: number | undefined, digits: number): string => (value === undefined ? '–' : value.toFixed(digits));

function ratioCell(result: RowResult, target: Compared): string {
  const value = ratio(result, target);
  // proxy-ref has no goal: it only shows the ceiling for proxy.
  const goals: Partial<Record<Compared, number>> = result.row.goals;
  const goal = goals[target];
  if (value === undefined) return '–';
  if (goal === undefined) return `${value.toFixed(2)}×`;
  return `${value.toFixed(2)}× ${value >= goal ? 'ok' : 'MISS'} (≥${goal})`;
}

/** One figure per target shown, joined by slashes. */
function perTarget(result: RowResult, targets: readonly TargetName[], figure: (s: NonNullable<ReturnType<typeof summary>>) => string): string {
  return targets
    .map((t) => {
      const s = summary(result.samples[t]);
      return s ? figure(s) : '–';
    })
    .join(' / ');
}

function rssCell(result: RowResult, targets: readonly TargetName[]): string {
  const cells = perTarget(result, targets, (s) => (s.peakRssBytes / MiB).toFixed(0));
  if (!MEMORY_ROWS.includes(result.row.id)) return cells;
  const ours = (['direct', 'proxy'] as const).map((t) => summary(result.samples[t])?.peakRssBytes ?? 0);
  return `${cells} ${Math.max(...ours) <= RSS_LIMIT ? 'ok' : 'MISS'} (≤${RSS_LIMIT / MiB})`;
}

const CLIENT_DESCRIPTIONS: Record<ClientName, string> = {
  go: "go: containerd's own content proxy client (content/proxy, grpc-go), bench/goclient",
  node: 'node: grpc-js in the benchmark process, talking as containerd\'s proxy client does',
};

/** Each target's letter in the per-target columns (proxy and proxy-ref share their first). */
const INITIALS: Record<TargetName, string> = { direct: 'd', containerd: 'c', proxy: 'p', 'proxy-ref': 'r', s3: 's' };

/** A plain-text table; values are medians of the runs. */
export function toTable(input: ReportInput): string {
  // Only the targets that ran get columns.
  const targets = TARGET_NAMES.filter((t) => input.results.some((result) => result.samples[t]));
  const initials = targets.map((t) => INITIALS[t]).join('/');
  const behind = targets.filter((t) => t === 'proxy' || t === 'proxy-ref');
  const hopHeader = behind.length ? [`containerd CPU s ${behind.map((t) => INITIALS[t]).join('/')}`] : [];
  const header = ['row', 'unit', ...targets, 'direct/ctrd', 'proxy/ctrd', 'ref/ctrd', `peak RSS MiB ${initials}`, `store CPU s ${initials}`, ...hopHeader, `client CPU % ${initials}`];
  const lines = input.results.map((result) => {
    const cell = (t: TargetName) => fixed(summary(result.samples[t])?.median, result.row.unit === 'MiB/s' ? 1 : 0);
    return [
      result.row.title(input.sizes),
      result.row.unit,
      ...targets.map(cell),
      ratioCell(result, 'direct'),
      ratioCell(result, 'proxy'),
      ratioCell(result, 'proxy-ref'),
      rssCell(result, targets),
      perTarget(result, targets, (s) => s.storeCpuSeconds.toFixed(1)),
      ...(behind.length ? [perTarget(result, behind, (s) => fixed(s.hopCpuSeconds, 1))] : []),
      result.row.externalClient ? '–' : perTarget(result, targets, (s) => (100 * s.clientCpuShare).toFixed(0)),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    `machine: ${input.machine}`,
    `command: ${input.command}`,
    `client: ${CLIENT_DESCRIPTIONS[input.client]}`,
    `medians of ${input.runs} run(s); direct = contentd, containerd = containerd's own store, proxy = containerd with contentd as its content proxy plugin, proxy-ref (r) = containerd with its own local store as its content proxy plugin (bench/refserver, Go): the ceiling for proxy, s3 = contentd with its blobs in S3 (Ceph RGW); peak RSS and CPU seconds are the content store's process (contentd for direct, proxy and s3, the Go ref server for proxy-ref; containerd's own work is not counted there for proxy and proxy-ref: "containerd CPU s" gives it, the proxy hop's cost); client CPU % is the benchmark client's process CPU time over the row's wall time (100 = one core busy throughout: near it, the client rather than the store may set the pace)`,
    '',
    format(header),
    `|${widths.map((w, i) => (i < 2 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...lines.map(format),
  ].join('\n');
}
