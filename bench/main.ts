#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { MiB } from './data';
import { CLIENTS, type BenchDriver, type ClientName } from './driver';
import { GoDriver, stopGoClient } from './go-driver';
import { NodeDriver } from './node-driver';
import { startPullFixture, type PullFixture } from './pull';
import { toJson, toTable, type RowResult } from './report';
import { FULL_SIZES, QUICK_SIZES, ROWS as STORE_ROWS, type RowContext, type Sizes, type TargetState } from './rows';
import { cpuSeconds, dropCleanPages, peakRss, resetPeakRss } from './proc';
import { S3_ROWS } from './s3';
import { startTarget, TARGET_NAMES, type Target, type TargetName } from './targets';
import { warmUp } from './warmup';

/**
 * `npm run bench`: every row against this server, containerd's own store and
 * containerd with this server as its proxy plugin, with one client
 * (containerd's own, in Go, unless --client node). Progress
 * goes to stderr, the table (or --json) to stdout.
 */

interface Flags {
  quick: boolean;
  json: boolean;
  runs: number;
  only?: string[];
  targets: TargetName[];
  client: ClientName;
  profile?: string;
}

const NAMESPACE = 'bench';
/** Every row: the comparisons with containerd, then the s3 backend's. */
const ROWS = [...STORE_ROWS, ...S3_ROWS];

function list<T extends string>(allowed: readonly T[]) {
  return (value: string): T[] => {
    const items = value.split(',').map((s) => s.trim()).filter(Boolean);
    for (const item of items) if (!allowed.includes(item as T)) throw new InvalidArgumentError(`unknown ${JSON.stringify(item)}; one of ${allowed.join(', ')}`);
    return items as T[];
  };
}

function oneOf<T extends string>(allowed: readonly T[]) {
  return (value: string): T => {
    if (!allowed.includes(value as T)) throw new InvalidArgumentError(`one of ${allowed.join(', ')}`);
    return value as T;
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('bench')
    .description('content API benchmark: contentd vs containerd')
    .option('--quick', 'tiny sizes, to check that every row works', false)
    .option('--json', 'print JSON instead of the table', false)
    .option('--runs <n>', 'runs per row; the median is reported', positive, 3)
    .option('--only <rows>', `comma-separated rows: ${ROWS.map((r) => r.id).join(',')}`, list(ROWS.map((r) => r.id)))
    .option('--targets <targets>', `comma-separated: ${TARGET_NAMES.join(',')}`, list(TARGET_NAMES), [...TARGET_NAMES])
    .option('--client <client>', "the client driving every target: go (containerd's content proxy client) or node (grpc-js)", oneOf(CLIENTS), 'go')
    .option('--profile <dir>', "write contentd's CPU profiles (node --cpu-prof) into dir")
    .parse(argv);
  return program.opts<Flags>();
}

function machine(): string {
  const cores = cpus();
  let containerd = 'not found';
  try {
    containerd = execFileSync('containerd', ['--version'], { encoding: 'utf8' }).trim().split(' ').slice(-2).join(' ');
  } catch {
    // reported as not found
  }
  return `${cores.length} × ${cores[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / (1 << 30))} GiB RAM, Linux ${release()}, Node ${process.version}, containerd ${containerd}`;
}

/** One running instance per target for the rows that share one; fresh rows start their own. Each is warmed up before use. */
class Targets {
  private readonly running = new Map<TargetName, { target: Target; driver: BenchDriver; state: TargetState }>();
  private fresh = 0;

  constructor(
    private readonly dir: string,
    private readonly client: ClientName,
    private readonly sizes: Sizes,
    private readonly profileDir?: string,
  ) {}

  private async driver(target: Target): Promise<BenchDriver> {
    const driver = this.client === 'go' ? new GoDriver(target.address, NAMESPACE) : new NodeDriver(target.address, NAMESPACE);
    process.stderr.write(`warming up ${target.name}\n`);
    await warmUp(driver, this.sizes.warmUp, this.sizes.concurrency);
    return driver;
  }

  async shared(name: TargetName) {
    let entry = this.running.get(name);
    if (!entry) {
      const target = await startTarget(name, { dir: join(this.dir, name), profileDir: this.profileDir });
      entry = { target, driver: await this.driver(target), state: {} };
      this.running.set(name, entry);
    }
    return entry;
  }

  /** Runs fn on a target started for it alone, stopped afterwards. */
  async withFresh<T>(name: TargetName, fn: (target: Target, driver: BenchDriver) => Promise<T>): Promise<T> {
    const target = await startTarget(name, { dir: join(this.dir, `${name}-fresh-${++this.fresh}`), profileDir: this.profileDir });
    let driver: BenchDriver | undefined;
    try {
      driver = await this.driver(target);
      return await fn(target, driver);
    } finally {
      driver?.close();
      await target.stop();
    }
  }

  async stopAll(): Promise<void> {
    for (const { target, driver } of this.running.values()) {
      driver.close();
      await target.stop();
    }
    this.running.clear();
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  const sizes = flags.quick ? QUICK_SIZES : FULL_SIZES;
  // Rows for none of the chosen targets are left out of the table.
  const rows = ROWS.filter((row) => (!flags.only || flags.only.includes(row.id)) && row.targets.some((t) => flags.targets.includes(t)));
  if (flags.profile) await mkdir(resolve(flags.profile), { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'contentd-bench-'));
  const targets = new Targets(dir, flags.client, sizes, flags.profile && resolve(flags.profile));
  let fixture: Promise<PullFixture> | undefined;
  const results: RowResult[] = rows.map((row) => ({ row, samples: {} }));
  let warnedDrop = false;
  try {
    for (let run = 1; run <= flags.runs; run++) {
      for (const [rowIndex, result] of results.entries()) {
        const names = result.row.targets.filter((t) => flags.targets.includes(t));
        // Every other run in reverse order: no target always goes first (after the previous row's writes).
        for (const name of run % 2 ? names : [...names].reverse()) {
          const measureOn = async (target: Target, driver: BenchDriver, state: TargetState) => {
            const ctx: RowContext = {
              target,
              driver,
              namespace: NAMESPACE,
              sizes,
              state,
              seed: run * 100 + rowIndex,
              pullFixture: () => (fixture ??= startPullFixture(join(dir, 'pull'), sizes.pullLayers, sizes.pullLayerSize)),
            };
            await result.row.prepare?.(ctx);
            // Dirty pages of earlier rows are flushed now, not during this measurement.
            execFileSync('sync');
            if (result.row.writesNewPages && !(await dropCleanPages()) && !warnedDrop) {
              warnedDrop = true;
              process.stderr.write('bench: cannot drop the page cache (not root?): ingest rows may meet slow new pages\n');
            }
            await resetPeakRss(target.storePid);
            const cpuBefore = await cpuSeconds(target.storePid);
            const hopBefore = target.hopPid === undefined ? 0 : await cpuSeconds(target.hopPid);
            const clientBefore = await driver.cpuSeconds();
            const m = await result.row.measure(ctx);
            const clientCpu = (await driver.cpuSeconds()) - clientBefore;
            const rss = await peakRss(target.storePid);
            const cpu = (await cpuSeconds(target.storePid)) - cpuBefore;
            const hopCpu = target.hopPid === undefined ? undefined : (await cpuSeconds(target.hopPid)) - hopBefore;
            const samples = (result.samples[name] ??= { values: [], seconds: [], peakRss: [], cpuSeconds: [], hopCpuSeconds: [], clientCpuShare: [] });
            samples.values.push(m.value);
            samples.seconds.push(m.seconds);
            samples.peakRss.push(rss);
            samples.cpuSeconds.push(cpu);
            if (hopCpu !== undefined) samples.hopCpuSeconds.push(hopCpu);
            samples.clientCpuShare.push(clientCpu / m.seconds);
            process.stderr.write(
              `run ${run}/${flags.runs} ${result.row.id} ${name}: ${m.value.toFixed(1)} ${result.row.unit} (${m.seconds.toFixed(2)} s, store CPU ${cpu.toFixed(2)} s${hopCpu === undefined ? '' : `, containerd CPU ${hopCpu.toFixed(2)} s`}, peak RSS ${(rss / MiB).toFixed(0)} MiB)\n`,
            );
          };
          if (result.row.fresh) {
            await targets.withFresh(name, (target, driver) => measureOn(target, driver, {}));
          } else {
            const { target, driver, state } = await targets.shared(name);
            await measureOn(target, driver, state);
          }
        }
      }
    }
  } finally {
    await targets.stopAll();
    await stopGoClient();
    if (fixture) await (await fixture.catch(() => undefined))?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const input = { machine: machine(), command: `node dist/bench/main.js ${process.argv.slice(2).join(' ')}`.trim(), client: flags.client, runs: flags.runs, sizes, results };
  process.stdout.write(flags.json ? `${JSON.stringify(toJson(input), null, 2)}\n` : `${toTable(input)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
