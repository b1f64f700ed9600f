import {
  type ReadContentRequest,
  type ReadContentResponse,
  type WriteContentRequest,
  type WriteContentResponse,
  WriteAction,
  type ListContentRequest,
  type ListContentResponse,
} from '../../generated/containerd/services/content/v1/content';
import type { ServerCall } from '../rpc/call';
import type { ServiceDefinition, ServiceImplementation } from '../rpc/types';
import { invalidArgument, outOfRange } from '../store/errors';
import { validateDigest } from '../store/digest';
import type { ContentStore, ContentWriter, Info, RequestContext } from '../store/types';
import { toProtoInfo, toProtoStatus, toTimestamp } from './convert';
import { streaming, unary, type HandlerEnv } from './handlers';
import { allocReadResponse, CONTENT_DEFINITION } from './wire';

export const CONTENT_SERVICE_NAME = 'containerd.services.content.v1.Content';

/** Read responses carry 1 MiB: well above containerd's 32 KiB, well below the 4 MiB client default. */
const READ_CHUNK = 1 << 20;
/** Infos per List message. */
const LIST_BATCH = 100;

/** The Content gRPC service: translates messages and nothing else. */
export function contentService(store: ContentStore, env: HandlerEnv): { definition: ServiceDefinition; implementation: ServiceImplementation } {
  const name = 'Content';
  const implementation = {
    info: unary(env, name, 'Info', (req: { digest: string }, ctx) => ({ info: toProtoInfo(store.info(ctx, req.digest)) })),

    update: unary(env, name, 'Update', (req: { info?: { digest: string; labels: Record<string, string> }; updateMask?: string[] }, ctx) => {
      if (!req.info) throw invalidArgument('info is required');
      return { info: toProtoInfo(store.update(ctx, req.info, req.updateMask ?? [])) };
    }),

    list: streaming(env, name, 'List', async (ctx, call: ServerCall<ListContentRequest, ListContentResponse>) => {
      let batch: Info[] = [];
      for (const info of store.walk(ctx, call.request.filters)) {
        batch.push(info);
        if (batch.length >= LIST_BATCH) {
          await call.send({ info: batch.map(toProtoInfo) });
          batch = [];
        }
      }
      if (batch.length > 0) await call.send({ info: batch.map(toProtoInfo) });
    }),

    delete: unary(env, name, 'Delete', async (req: { digest: string }, ctx) => {
      await store.delete(ctx, req.digest);
      return {};
    }),

    read: streaming(env, name, 'Read', (ctx, call: ServerCall<ReadContentRequest, ReadContentResponse>) => read(store, ctx, call)),

    status: unary(env, name, 'Status', async (req: { ref: string }, ctx) => ({ status: toProtoStatus(await store.status(ctx, req.ref)) })),

    listStatuses: unary(env, name, 'ListStatuses', async (req: { filters: string[] }, ctx) => ({
      statuses: (await store.listStatuses(ctx, req.filters)).map(toProtoStatus),
    })),

    write: streaming(env, name, 'Write', (ctx, call: ServerCall<WriteContentRequest, WriteContentResponse>) => write(store, ctx, call)),

    abort: unary(env, name, 'Abort', async (req: { ref: string }, ctx) => {
      await store.abort(ctx, req.ref);
      return {};
    }),
  };
  return { definition: CONTENT_DEFINITION, implementation };
}

async function read(store: ContentStore, ctx: RequestContext, call: ServerCall<ReadContentRequest, ReadContentResponse>): Promise<void> {
  const req = call.request;
  validateDigest(req.digest);
  const reader = await store.readerAt(ctx, req.digest);
  try {
    // As containerd's service: a negative offset reads from the start; a size of 0 or less, or past the end, reads to the end.
    let offset = Math.max(req.offset, 0);
    if (offset > reader.size) throw outOfRange(`read offset ${offset} is beyond the end of content ${req.digest} (size ${reader.size})`);
    const end = req.size <= 0 || offset + req.size > reader.size ? reader.size : offset + req.size;
    while (offset < end && !call.cancelled) {
      const length = Math.min(READ_CHUNK, end - offset);
      const response = allocReadResponse(offset, length);
      const n = await reader.read(response.data, offset, length).catch((e: unknown) => {
        response.release();
        throw e;
      });
      if (n === 0) {
        response.release();
        break;
      }
      const message = response.done(n);
      offset += n;
      // A cancelled call may not have written the bytes out yet: leave that buffer to the collector.
      const release = (): void => void (call.cancelled || response.release());
      if (offset >= end) {
        // The last message is not waited for, so the status leaves in the same write as its bytes.
        call.write(message, release);
        break;
      }
      await call.send(message);
      release();
    }
  } finally {
    await reader.close();
  }
}

/** The Write stream, with containerd's service semantics (services/content/service.go). */
async function write(store: ContentStore, ctx: RequestContext, call: ServerCall<WriteContentRequest, WriteContentResponse>): Promise<void> {
  let writer: ContentWriter | undefined;
  call.on('end', () => writer?.drain());
  // Nobody is left to hear about a failed close on a cancelled stream; it must not become an unhandled rejection.
  call.on('cancelled', () => void writer?.close().catch(() => undefined));
  try {
    for await (const req of call.messages()) {
      if (!writer) {
        if (!req.ref) throw invalidArgument('first message must have a reference');
        writer = await store.writer(ctx, { ref: req.ref, total: req.total, expected: req.expected });
      } else if (req.expected || req.total > 0) {
        await writer.expect({ total: req.total > 0 ? req.total : undefined, expected: req.expected || undefined });
      }
      switch (req.action) {
        case WriteAction.STAT:
          break;
        case WriteAction.WRITE:
        case WriteAction.COMMIT:
          await writer.write(req.offset, req.data);
          if (req.action === WriteAction.COMMIT) await writer.commit(req.labels);
          break;
        default:
          throw invalidArgument(`unknown write action ${String(req.action)}`);
      }
      const status = writer.status();
      const response: WriteContentResponse = {
        action: req.action,
        startedAt: toTimestamp(status.startedAt),
        updatedAt: toTimestamp(status.updatedAt),
        offset: status.offset,
        total: status.total,
        digest: writer.digest(),
      };
      await call.send(response);
      // containerd's service ends the call after a commit, whether or not the client half-closed.
      if (req.action === WriteAction.COMMIT) return;
    }
  } finally {
    await writer?.close();
  }
}
