// A Content client that sends and receives raw bytes (identity serializers),
// to put on the wire what no well-behaved client would: malformed protobuf,
// out-of-range integers, random garbage.
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { ContentService } from '../../generated/containerd/services/content/v1/content';

export type ContentMethod = keyof typeof ContentService;
export const CONTENT_METHODS = Object.keys(ContentService) as ContentMethod[];

const identity = (bytes: Buffer): Buffer => bytes;

/** The Content service with every message left as bytes. */
const RawContentService = makeGenericClientConstructor(
  Object.fromEntries(
    Object.entries(ContentService).map(([name, m]) => [name, { ...m, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity }]),
  ),
  'Content',
);

export function rawContentClient(address: string): Client {
  return new RawContentService(`unix:${address}`, credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.max_send_message_length': 64 << 20,
  });
}

export interface RawOutcome {
  code: status;
  details: string;
  /** Response messages received before the status. */
  responses: Buffer[];
}

/**
 * Calls method with the given request messages (one for unary and
 * server-streaming methods) and resolves with the final status, never
 * rejects: the status is what the test looks at.
 */
export function rawCall(client: Client, method: ContentMethod, requests: Buffer[], metadata = new Metadata(), deadlineMs = 10_000): Promise<RawOutcome> {
  const { path, requestStream, responseStream } = ContentService[method];
  const options = { deadline: Date.now() + deadlineMs };
  return new Promise((resolve) => {
    const responses: Buffer[] = [];
    const finish = (err: ServiceError | null): void => resolve({ code: err ? err.code : status.OK, details: err ? err.details : '', responses });
    if (!requestStream && !responseStream) {
      client.makeUnaryRequest(path, identity, identity, requests[0] ?? Buffer.alloc(0), metadata, options, (err, res) => {
        if (res) responses.push(res);
        finish(err);
      });
      return;
    }
    const listen = (call: NodeJS.EventEmitter): void => {
      call.on('data', (res: Buffer) => responses.push(res));
      call.on('error', (err: ServiceError) => finish(err));
      call.on('end', () => finish(null));
    };
    if (!requestStream) {
      listen(client.makeServerStreamRequest(path, identity, identity, requests[0] ?? Buffer.alloc(0), metadata, options));
      return;
    }
    const call = client.makeBidiStreamRequest(path, identity, identity, metadata, options);
    listen(call);
    for (const request of requests) call.write(request);
    call.end();
  });
}
