import { createServer, type Server } from 'node:net';
import { REPEATED_FIELDS, ServerCall, type CallLimits } from './call';
import { Http2Connection } from './http2/connection';
import type { HeaderField } from './http2/hpack';
import type { ServerStream } from './http2/stream';
import { setSendBuffer } from './send-buffer';
import { Code, type MethodDefinition, type ServiceDefinition, type ServiceImplementation, type StreamingHandler, type UnaryHandler } from './types';

/**
 * A gRPC server on contentd's own HTTP/2 layer (./http2), for the services
 * contentd serves. containerd's unpack makes two RPCs per 32 KiB it reads,
 * so the cost of a call is what matters: grpc-js's server spends about 90 µs
 * of CPU on one, a bare node:http2 server about 40, this one about 12. It
 * also opens HTTP/2 flow-control windows wide enough for 1 MiB writes. The
 * handler shapes are grpc-js's, so grpc-health-check's implementation plugs
 * in as it is.
 */

/** Per-stream receive window: a 1 MiB Write message and its framing arrive without waiting for a window update. */
const STREAM_WINDOW = 2 << 20;
/** Per-connection receive window: bounds what one client can have buffered here. */
const CONNECTION_WINDOW = 16 << 20;

export interface RpcServerOptions extends CallLimits {
  /** Kernel send buffer of each connection, in bytes (see setSendBuffer); 0 keeps the system's default. */
  socketSendBuffer: number;
  /** A fault on this side that ended a connection (the server lives on). */
  onInternalError(error: unknown): void;
}

interface Route {
  method: MethodDefinition;
  handler: UnaryHandler | StreamingHandler;
}

export class RpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly connections = new Set<Http2Connection>();
  private readonly net: Server;
  private closing = false;

  constructor(private readonly options: RpcServerOptions) {
    // pauseOnConnect: each connection reads into a buffer of its own (Http2Connection).
    this.net = createServer({ pauseOnConnect: true }, (socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      if (options.socketSendBuffer > 0) setSendBuffer(socket, options.socketSendBuffer);
      const connection = new Http2Connection(socket, { streamWindow: STREAM_WINDOW, connectionWindow: CONNECTION_WINDOW, repeatedFields: REPEATED_FIELDS }, (stream) => this.onStream(stream), options.onInternalError);
      this.connections.add(connection);
      socket.on('close', () => this.connections.delete(connection));
    });
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
      this.net.once('error', reject);
      this.net.listen(path, () => {
        this.net.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting connections and calls; resolves once every call in flight has finished. */
  async shutdown(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    // GOAWAY: clients open no new streams; each connection closes when its last stream ends.
    for (const connection of this.connections) connection.close();
    await closed;
  }

  /** Ends every connection now. */
  forceShutdown(): void {
    this.closing = true;
    for (const connection of this.connections) connection.destroy();
    this.net.close();
  }

  private onStream(stream: ServerStream): void {
    const contentType = stream.headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.respondAndEnd(UNSUPPORTED_MEDIA_TYPE);
      return;
    }
    const path = stream.headers[':path'];
    const route = typeof path === 'string' ? this.routes.get(path) : undefined;
    if (!route) {
      const call = new ServerCall(stream, UNKNOWN_METHOD, this.options);
      call.fail({ code: Code.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    const call = new ServerCall(stream, route.method, this.options);
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

const UNSUPPORTED_MEDIA_TYPE: HeaderField[] = [[':status', '415']];

const UNKNOWN_METHOD: MethodDefinition = {
  path: '',
  requestStream: true,
  responseStream: true,
  requestDeserialize: (bytes) => bytes,
  responseSerialize: () => Buffer.alloc(0),
};
