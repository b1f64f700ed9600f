import { credentials, Metadata, status as grpcStatus, type ChannelOptions, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  ContentClient,
  WriteAction,
  type Info,
  type ListContentResponse,
  type ListStatusesRequest,
  type ListStatusesResponse,
  type ReadContentResponse,
  type Status,
  type StatusRequest,
  type StatusResponse,
  type UpdateRequest,
  type UpdateResponse,
  type WriteContentRequest,
  type WriteContentResponse,
} from '../../generated/containerd/services/content/v1/content';
import type { Timestamp } from '../../generated/google/protobuf/timestamp';

/** A typed, promise-based content API client for tests, over a real unix socket. */
export function contentClient(address: string, options: ChannelOptions = {}): ContentClient {
  return new ContentClient(`unix:${address}`, credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.max_send_message_length': 64 << 20,
    ...options,
  });
}

export function md(namespace?: string, lease?: string): Metadata {
  const m = new Metadata();
  if (namespace) m.set('containerd-namespace', namespace);
  if (lease) m.set('containerd-lease', lease);
  return m;
}

/** A protobuf timestamp as nanoseconds since the epoch. */
export const toNs = (t: Timestamp | undefined): bigint => BigInt(t!.seconds) * 1_000_000_000n + BigInt(t!.nanos);

export const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

type Unary<Req, Res> = (req: Req, metadata: Metadata, callback: (err: ServiceError | null, res: Res) => void) => unknown;

export function call<Req, Res>(client: ContentClient, method: Unary<Req, Res>, req: Req, metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, metadata, (err, res) => (err ? reject(err) : resolve(res))));
}

export async function info(client: ContentClient, digest: string, metadata?: Metadata): Promise<Info> {
  return new Promise((resolve, reject) =>
    client.info({ digest }, metadata ?? new Metadata(), (err, res) => (err ? reject(err) : resolve(res.info!))),
  );
}

export function read(client: ContentClient, digest: string, offset = 0, size = 0, metadata = new Metadata()): Promise<{ data: Buffer; messages: ReadContentResponse[] }> {
  return new Promise((resolve, reject) => {
    const stream = client.read({ digest, offset, size }, metadata);
    const messages: ReadContentResponse[] = [];
    stream.on('data', (m: ReadContentResponse) => messages.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve({ data: Buffer.concat(messages.map((m) => m.data)), messages }));
  });
}

/** Every List response message, to see how the server batches. */
export function listMessages(client: ContentClient, filters: string[] = [], metadata = new Metadata()): Promise<ListContentResponse[]> {
  return new Promise((resolve, reject) => {
    const out: ListContentResponse[] = [];
    const stream = client.list({ filters }, metadata);
    stream.on('data', (m: ListContentResponse) => out.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(out));
  });
}

export async function list(client: ContentClient, filters: string[] = [], metadata = new Metadata()): Promise<Info[]> {
  return (await listMessages(client, filters, metadata)).flatMap((m) => m.info);
}

export async function update(client: ContentClient, digest: string, labels: Record<string, string>, paths?: string[], metadata = new Metadata()): Promise<Info> {
  const res = await call<UpdateRequest, UpdateResponse>(client, client.update, { info: { digest, size: 0, createdAt: undefined, updatedAt: undefined, labels }, updateMask: paths }, metadata);
  return res.info!;
}

export async function status(client: ContentClient, ref: string, metadata = new Metadata()): Promise<Status> {
  return (await call<StatusRequest, StatusResponse>(client, client.status, { ref }, metadata)).status!;
}

export async function listStatuses(client: ContentClient, filters: string[] = [], metadata = new Metadata()): Promise<Status[]> {
  return (await call<ListStatusesRequest, ListStatusesResponse>(client, client.listStatuses, { filters }, metadata)).statuses;
}

export async function abort(client: ContentClient, ref: string, metadata = new Metadata()): Promise<void> {
  await call(client, client.abort, { ref }, metadata);
}

export async function remove(client: ContentClient, digest: string, metadata = new Metadata()): Promise<void> {
  await call(client, client.delete, { digest }, metadata);
}

/** Asserts that promise fails with the gRPC code (by name, e.g. 'NOT_FOUND'); returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: keyof typeof grpcStatus, message?: RegExp): Promise<ServiceError> {
  const err = await promise.then(
    () => assert.fail(`expected ${code}, the call succeeded`),
    (e: ServiceError) => e,
  );
  assert.equal(grpcStatus[err.code], code, `expected ${code}, got ${grpcStatus[err.code]}: ${err.details}`);
  if (message) assert.match(err.details, message);
  return err;
}

/** A Write stream driven one request/response at a time. */
export class WriteSession {
  private readonly stream: ClientDuplexStream<WriteContentRequest, WriteContentResponse>;
  private readonly queue: WriteContentResponse[] = [];
  private waiters: Array<{ resolve: (r: WriteContentResponse) => void; reject: (e: Error) => void }> = [];
  private failure?: Error;
  private ended = false;
  readonly done: Promise<void>;

  constructor(client: ContentClient, metadata = new Metadata()) {
    this.stream = client.write(metadata);
    this.stream.on('data', (r: WriteContentResponse) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(r);
      else this.queue.push(r);
    });
    this.done = new Promise((resolve, reject) => {
      this.stream.on('error', (e: Error) => {
        this.failure = e;
        for (const w of this.waiters.splice(0)) w.reject(e);
        reject(e);
      });
      this.stream.on('end', () => {
        this.ended = true;
        for (const w of this.waiters.splice(0)) w.reject(new Error('stream ended'));
        resolve();
      });
    });
    this.done.catch(() => undefined);
  }

  send(req: Partial<WriteContentRequest>): Promise<WriteContentResponse> {
    const full: WriteContentRequest = { action: WriteAction.STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...req };
    this.stream.write(full);
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new Error('stream ended'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Half-closes and waits for the server's status. */
  async close(): Promise<void> {
    this.stream.end();
    await this.done;
  }

  cancel(): void {
    this.stream.cancel();
  }
}

/** Writes a whole blob in one stream: STAT, WRITEs of chunk bytes, COMMIT. */
export async function writeBlob(
  client: ContentClient,
  ref: string,
  data: Buffer,
  options: { metadata?: Metadata; labels?: Record<string, string>; chunk?: number; expected?: string } = {},
): Promise<WriteContentResponse> {
  const session = new WriteSession(client, options.metadata);
  const expected = options.expected ?? sha256(data);
  const chunk = options.chunk ?? 1 << 20;
  try {
    const stat = await session.send({ action: WriteAction.STAT, ref, total: data.length, expected });
    let offset = stat.offset;
    while (offset < data.length) {
      const part = data.subarray(offset, offset + chunk);
      await session.send({ action: WriteAction.WRITE, offset, data: part });
      offset += part.length;
    }
    const res = await session.send({ action: WriteAction.COMMIT, offset, total: data.length, expected, labels: options.labels ?? {} });
    await session.close();
    return res;
  } catch (e) {
    session.cancel();
    throw e;
  }
}
