import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type { RequestContext } from '../store/types';
import type { ServerCall } from '../rpc/call';
import { Code, type CallError, type StreamingHandler, type UnaryHandler } from '../rpc/types';
import { requestContext, type MetadataReader } from './request-context';
import { codeName, toCallError } from './status';

/**
 * Wraps service methods written as async functions into RPC handlers:
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

/**
 * How loudly each outcome is logged. Callers such as containerd probe with
 * Info and Status and expect NotFound or AlreadyExists, so those are routine;
 * server-side failures are what an operator must see.
 */
function levelOf(code: Code): 'debug' | 'info' | 'warn' | 'error' {
  switch (code) {
    case Code.OK:
    case Code.NOT_FOUND:
    case Code.ALREADY_EXISTS:
    case Code.CANCELLED:
      return 'debug';
    case Code.RESOURCE_EXHAUSTED:
    case Code.UNAVAILABLE:
      return 'warn';
    case Code.INTERNAL:
    case Code.UNKNOWN:
    case Code.DATA_LOSS:
      return 'error';
    default:
      return 'info';
  }
}

/**
 * winston's isLevelEnabled builds the list of its transports on every call:
 * the logger's own level decides here (contentd's transports set none).
 */
function levelEnabled(logger: Logger, level: string): boolean {
  return logger.levels[level]! <= logger.levels[logger.level]!;
}

/** Starts the bookkeeping of one request; run() rejects before fn when the metadata is invalid. */
function begin(env: HandlerEnv, name: string, metadata: MetadataReader) {
  const started = process.hrtime.bigint();
  let namespace: string | undefined;
  env.requests?.started(name);
  /** Records the outcome: no error, or err and what it maps to. */
  const record = (err?: unknown, mapped?: CallError): void => {
    const code = mapped?.code ?? Code.OK;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    env.requests?.finished(name, codeName(code), seconds);
    const level = levelOf(code);
    // Most lines are debug: build the request's logger and fields only when they are written.
    if (levelEnabled(env.logger, level)) {
      const log = env.logger.child({ requestId: randomBytes(6).toString('hex'), method: name });
      const fields = {
        code: codeName(code),
        durationMs: Math.round(seconds * 1e6) / 1e3,
        ...(namespace !== undefined && { namespace }),
        ...(level === 'error' && err instanceof Error && { stack: err.stack }),
      };
      log.log(level, mapped ? mapped.details : 'finished', fields);
    }
  };
  const succeeded = (): void => record();
  const failed = (err: unknown): CallError => {
    const mapped = toCallError(err);
    record(err, mapped);
    return mapped;
  };
  const run = <T>(fn: (ctx: RequestContext) => Promise<T> | T): Promise<T> =>
    Promise.resolve().then(() => {
      const ctx = requestContext(metadata);
      namespace = ctx.namespace;
      return fn(ctx);
    });
  return { run, succeeded, failed };
}

export function unary<Req, Res>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (req: Req, ctx: RequestContext) => Promise<Res> | Res,
): UnaryHandler {
  const name = `${service}/${method}`;
  return (call, callback) => {
    const { run, succeeded, failed } = begin(env, name, call.metadata);
    run((ctx) => fn(call.request as Req, ctx)).then(
      (res) => {
        succeeded();
        callback(null, res);
      },
      (err: unknown) => callback(failed(err)),
    );
  };
}

/** Runs a streaming handler: OK ends the call, an error becomes its status (unless the client already left). */
export function streaming<Req, Res>(
  env: HandlerEnv,
  service: string,
  method: string,
  fn: (ctx: RequestContext, call: ServerCall<Req, Res>) => Promise<void>,
): StreamingHandler {
  const name = `${service}/${method}`;
  return (call) => {
    const { run, succeeded, failed } = begin(env, name, call.metadata);
    run((ctx) => fn(ctx, call as ServerCall<Req, Res>)).then(
      () => {
        succeeded();
        call.end();
      },
      (err: unknown) => call.fail(failed(err)),
    );
  };
}
