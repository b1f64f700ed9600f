import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { GC_ROOT_LABELS, type BenchDriver } from './driver';
import { buildGoTool } from './go-build';
import { cpuSeconds } from './proc';

interface Reply {
  seconds: number;
  /** CPU seconds spent generating data and digests before the timed part. */
  prepareCpu: number;
  digest?: string;
  digests?: string[];
  error?: string;
}

/**
 * bench/goclient: containerd's own content proxy client, one process for the
 * whole benchmark (its random pages, and so its blobs, are the same for every
 * target). Commands go one at a time, a JSON line each way.
 */
class GoClient {
  private readonly waiting: ((line: string) => void)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private exited: string | undefined;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code, signal) => {
      this.exited = `the Go bench client exited (${code ?? signal}): ${stderr.slice(-2000)}`;
      for (const resolve of this.waiting.splice(0)) resolve(JSON.stringify({ seconds: 0, prepareCpu: 0, error: this.exited }));
    });
  }

  static async start(): Promise<GoClient> {
    return new GoClient(spawn(await buildGoTool('benchclient'), [], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(command: Record<string, unknown>): Promise<Reply> {
    const sent = this.queue.then(
      () =>
        new Promise<Reply>((resolve, reject) => {
          if (this.exited) return reject(new Error(this.exited));
          this.waiting.push((line) => {
            const reply = JSON.parse(line) as Reply;
            if (reply.error) reject(new Error(`${String(command.op)}: ${reply.error}`));
            else resolve(reply);
          });
          this.child.stdin.write(`${JSON.stringify(command)}\n`);
        }),
    );
    this.queue = sent.catch(() => undefined);
    return sent;
  }

  stop(): void {
    this.child.stdin.end();
  }
}

let shared: Promise<GoClient> | undefined;

/** Stops the shared Go client, if one was started. */
export async function stopGoClient(): Promise<void> {
  const client = await shared?.catch(() => undefined);
  client?.stop();
  shared = undefined;
}

/** The rows' loops in containerd's own client, against one target (`--client go`). */
export class GoDriver implements BenchDriver {
  private readonly client = (shared ??= GoClient.start());
  /** CPU the client spent preparing rows: not the client's cost of talking to the store. */
  private prepareCpu = 0;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
  ) {}

  private async send(op: string, args: Record<string, unknown>): Promise<Reply> {
    const reply = await (await this.client).send({ op, address: this.address, namespace: this.namespace, labels: GC_ROOT_LABELS, ...args });
    this.prepareCpu += reply.prepareCpu;
    return reply;
  }

  async ingest(ref: string, size: number, seed: number): Promise<{ digest: string; seconds: number }> {
    const reply = await this.send('ingest', { ref, size, seed });
    return { digest: reply.digest!, seconds: reply.seconds };
  }

  async read(digest: string, size: number, chunk: number): Promise<number> {
    return (await this.send('read', { digest, size, chunk })).seconds;
  }

  async commitSmall(refPrefix: string, count: number, size: number, concurrency: number): Promise<{ digests: string[]; seconds: number }> {
    const reply = await this.send('commit-small', { ref: refPrefix, count, size, concurrency });
    return { digests: reply.digests ?? [], seconds: reply.seconds };
  }

  async info(digests: readonly string[], calls: number, concurrency: number): Promise<number> {
    return (await this.send('info', { digests, calls, concurrency })).seconds;
  }

  async readSmall(digests: readonly string[], concurrency: number): Promise<number> {
    return (await this.send('read-small', { digests, concurrency })).seconds;
  }

  async cpuSeconds(): Promise<number> {
    return (await cpuSeconds((await this.client).pid)) - this.prepareCpu;
  }

  close(): void {
    // The Go process is shared by every target: stopGoClient() ends it.
  }
}
