import { createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { ServerCall, type CallLimits } from './call';
import { Code, type MethodDefinition, type ServiceDefinition, type ServiceImplementation, type StreamingHandler, type UnaryHandler } from './types';

/**
 * A gRPC server straight on node:http2, for the services contentd serves.
 * grpc-js's server costs about a third more CPU per call (interceptor
 * chains, channelz, Node streams per call), and containerd's unpack makes
 * two RPCs per 32 KiB it reads; it also leaves HTTP/2 flow-control windows
 * at 64 KiB, which stalls 1 MiB writes. The handler shapes are grpc-js's, so
 * grpc-health-check's implementation plugs in as it is.
 */

/** Per-stream receive window: a 1 MiB Write message and its framing arrive without waiting for a window update. */
const STREAM_WINDOW = 2 << 20;
/** Per-connection receive window: bounds what one client can have buffered here. */
const CONNECTION_WINDOW = 16 << 20;

interface Route {
  method: MethodDefinition;
  handler: UnaryHandler | StreamingHandler;
}

export class RpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly http2: Http2Server;
  private closing = false;

  constructor(private readonly options: CallLimits) {
    // maxSessionMemory: Node's own cap makes sessions fail in odd ways under load; the windows above bound memory instead.
    this.http2 = createServer({ settings: { initialWindowSize: STREAM_WINDOW }, maxSessionMemory: Number.MAX_SAFE_INTEGER });
    this.http2.on('session', (session) => this.onSession(session));
    this.http2.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  addService(definition: ServiceDefinition, implementation: ServiceImplementation): void {
    for (const [name, method] of Object.entries(definition)) {
      const handler = (implementation[name] ?? (method.originalName && implementation[method.originalName])) as UnaryHandler | StreamingHandler | undefined;
      if (handler) this.routes.set(method.path, { method, handler });
    }
  }

  removeService(definition: ServiceDefinition): void {
    for (const method of Object.values(definition)) this.routes.delete(method.path);
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.http2.once('error', reject);
      this.http2.listen(path, () => {
        this.http2.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting connections and calls; resolves once every call in flight has finished. */
  async shutdown(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.http2.close(() => resolve()));
    // GOAWAY: clients open no new streams; each session closes when its last stream ends.
    for (const session of this.sessions) session.close();
    await closed;
  }

  /** Ends every connection now. */
  forceShutdown(): void {
    this.closing = true;
    for (const session of this.sessions) session.destroy();
    this.http2.close();
  }

  private onSession(session: ServerHttp2Session): void {
    if (this.closing) {
      session.destroy();
      return;
    }
    this.sessions.add(session);
    session.on('close', () => this.sessions.delete(session));
    // Errors end the session ('close' follows); nothing is left to report them to.
    session.on('error', () => undefined);
    session.setLocalWindowSize(CONNECTION_WINDOW);
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (!route) {
      const call = new ServerCall(stream, headers, UNKNOWN_METHOD, this.options);
      call.fail({ code: Code.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    const call = new ServerCall(stream, headers, route.method, this.options);
    const { method, handler } = route;
    if (method.responseStream) {
      call.start(() => (handler as StreamingHandler)(call));
      return;
    }
    call.start(() =>
      (handler as UnaryHandler)(call, (error, response) => {
        if (error) call.fail({ code: error.code ?? Code.UNKNOWN, details: error.details ?? '' });
        else {
          call.write(response);
          call.end();
        }
      }),
    );
  }
}

const UNKNOWN_METHOD: MethodDefinition = {
  path: '',
  requestStream: true,
  responseStream: true,
  requestDeserialize: (bytes) => bytes,
  responseSerialize: () => Buffer.alloc(0),
};
