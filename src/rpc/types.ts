import type { ServerCall } from './call';

/** gRPC status codes (the same numbers as grpc-js's `status`). */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

export interface CallError {
  code: Code;
  details: string;
}

/** One method as ts-proto's grpc-js output (and grpc-health-check) describe it. */
export interface MethodDefinition<Req = unknown, Res = unknown> {
  path: string;
  /** proto-loader's definitions key methods as in the .proto and name the camelCase key here. */
  originalName?: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(bytes: Buffer): Req;
  responseSerialize(message: Res): Buffer;
}

export type ServiceDefinition = Record<string, MethodDefinition>;

/** grpc-js's handler shapes: unary and client-streaming calls answer through the callback. */
export type UnaryHandler = (call: ServerCall, callback: (error: Partial<CallError> | null, response?: unknown) => void) => void;
export type StreamingHandler = (call: ServerCall) => void;
export type ServiceImplementation = Record<string, UnaryHandler | StreamingHandler>;
