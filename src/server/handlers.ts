import { status, type Metadata, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type ServiceError } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type { RequestContext } from '../store/types';
import { requestContext } from './request-context';
import { codeName, toServiceError } from './status';

/**
 * Wraps service methods written as async functions into grpc-js handlers:
 * request context from metadata, error mapping, one log line per request and
 * request metrics, so the service classes only translate messages.
 */

export interface RequestObserver {
  started(method: string): void;
  finished(method: string, code: string, seconds: number): void;
}

export interface HandlerEnv {
  logger: Logger;
  requests?: RequestObserver;
}

type Finish = (err: unknown) => ReturnType<typeof toServiceError> | undefined;

/**
 * How loudly each outcome is logged. Callers such as containerd probe with
 * Info and Status and expect NotFound or AlreadyExists, so those are routine;
 * server-side failures are what an operator must see.
 */
function levelOf(code: status): 'debug' | 'info' | 'warn' | 'error' {
  switch (code) {
    case status.OK:
    case status.NOT_FOUND:
    case status.ALREADY_EXISTS:
    case status.CANCELLED:
      return 'debug';
    case status.RESOURCE_EXHAUSTED:
    case status.UNAVAILABLE:
      return 'warn';
    case status.INTERNAL:
    case status.UNKNOWN:
    case status.DATA_LOSS:
      return 'error';
    default:
      return 'info';
  }
}

/** Starts the bookkeeping of one request; run() rejects before fn when the metadata is invalid. */
function begin(env: HandlerEnv, service: string, method: string, metadata: Metadata) {
  const started = process.hrtime.bigint();
  const name = `${service}/${method}`;
  let namespace: string | undefined;
  env.requests?.started(name);
  const finish: Finish = (err) => {
    const mapped = err === undefined ? undefined : toServiceError(err);
    const code = mapped?.code ?? status.OK;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    env.requests?.finished(name, codeName(code), seconds);
    const level = levelOf(code);
    // Most lines are debug: build the request's logger and fields only when they are written.
    if (env.logger.isLevelEnabled(level)) {
      const log = env.logger.child({ requestId: randomBytes(6).toString('hex'), method: name });
      const fields = {
        code: codeName(code),
        durationMs: Math.round(seconds * 1e6) / 1e3,
        ...(namespace !== undefined && { namespace }),
        ...(level === 'error' && err instanceof Error && { stack: err.stack }),
      };
      log.log(level, mapped ? mapped.details : 'finished', fields);
    }
    return mapped;
  };
  const run = <T>(fn: (ctx: RequestContext) => Promise<T> | T): Promise<T> =>
    Promise.resolve().then(() => {
      const ctx = requestContext(metadata);
      namespace = ctx.namespace;
      return fn(ctx);
    });
  return { run, finish };
}

export function unary<Req, Res>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (req: Req, ctx: RequestContext) => Promise<Res> | Res,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const { run, finish } = begin(env, service, method, call.metadata);
    run((ctx) => fn(call.request, ctx)).then(
      (res) => {
        finish(undefined);
        callback(null, res);
      },
      (err: unknown) => callback(finish(err) as ServiceError),
    );
  };
}

/** Runs a streaming handler: OK ends the call, an error becomes its status (unless the client already left). */
function streaming<Call extends ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (ctx: RequestContext, call: Call) => Promise<void>,
): (call: Call) => void {
  return (call) => {
    const { run, finish } = begin(env, service, method, call.metadata);
    run((ctx) => fn(ctx, call)).then(
      () => {
        finish(undefined);
        call.end();
      },
      (err: unknown) => {
        const mapped = finish(err);
        if (!call.cancelled) call.emit('error', mapped);
      },
    );
  };
}

export function serverStream<Req, Res>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (req: Req, ctx: RequestContext, call: ServerWritableStream<Req, Res>) => Promise<void>,
): (call: ServerWritableStream<Req, Res>) => void {
  return streaming(env, service, method, (ctx, call: ServerWritableStream<Req, Res>) => fn(call.request, ctx, call));
}

export function bidiStream<Req, Res>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (ctx: RequestContext, call: ServerDuplexStream<Req, Res>) => Promise<void>,
): (call: ServerDuplexStream<Req, Res>) => void {
  return streaming(env, service, method, fn);
}
