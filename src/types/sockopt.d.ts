// The sockopt package ships no types: the two functions it exports, for integer options.
declare module 'sockopt' {
  import type { Socket } from 'node:net';
  export function getsockopt(socket: Socket, level: number, option: number): number;
  export function setsockopt(socket: Socket, level: number, option: number, value: number): void;
}
