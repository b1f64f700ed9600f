// The sockopt package ships no types: the one function contentd uses, for integer options.
declare module 'sockopt' {
  import type { Socket } from 'node:net';
  export function setsockopt(socket: Socket, level: number, option: number, value: number): void;
}
