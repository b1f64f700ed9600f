import type { Command } from 'commander';
import type { Info } from '../store/types';

/**
 * What every command prints: a table or short text for people by default,
 * JSON on stdout with --json for scripts. Progress and diagnostics go to
 * stderr so that stdout stays parseable.
 */

export interface OutputFlags {
  json?: boolean;
}

export function addJsonOption(command: Command): Command {
  return command.option('--json', 'print JSON instead of human-readable text');
}

/** JSON with nanosecond timestamps and other bigints as decimal strings. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

export function printText(text: string): void {
  process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB"; exact below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Nanoseconds since the epoch as RFC 3339 in UTC, to the second for people. */
export function formatTime(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Nanoseconds since the epoch as RFC 3339 in UTC with all nine fractional digits, as containerd prints them. */
export function isoTime(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, `.${fraction}Z`);
}

/** Labels as k=v pairs sorted by key, "-" when there are none (as ctr prints them). */
export function formatLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? '-' : keys.map((k) => `${k}=${labels[k]}`).join(',');
}

/** containerd's global namespace ('') has no name to print. */
export function formatNamespace(namespace: string): string {
  return namespace === '' ? '(global)' : namespace;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** One namespace's reference to a blob, as info prints it with --json. */
export function referenceRecord(namespace: string, info: Info): Record<string, unknown> {
  return { namespace, createdAt: isoTime(info.createdAt), updatedAt: isoTime(info.updatedAt), labels: info.labels };
}

/** One namespace's view of a blob, as ls prints it with --json. */
export function contentRecord(namespace: string, info: Info): Record<string, unknown> {
  return { digest: info.digest, size: info.size, ...referenceRecord(namespace, info) };
}
