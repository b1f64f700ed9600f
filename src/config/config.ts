import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'smol-toml';

/**
 * Settings, from embedded defaults, then the TOML file, then command-line
 * flags. Defaults keep everything under ./data so a fresh clone runs without
 * root; config.example.toml documents every key and the production paths.
 */
export interface Config {
  root: string;
  grpc: {
    address: string;
    /** Octal permission bits of the socket file. */
    socketMode: number;
    uid?: number;
    gid?: number;
    maxRecvMessageSize: number;
    maxSendMessageSize: number;
    /** Kernel send buffer of each connection, bytes; 0 keeps the system's default. */
    socketSendBuffer: number;
  };
  log: { level: 'error' | 'warn' | 'info' | 'debug'; format: 'text' | 'json' };
  namespaces: { policy: 'shared' | 'isolated' };
  limits: { maxActiveIngests: number; maxBlobSize: number };
  metrics: { address: string };
  /** Garbage collection of namespaced clients' content (src/store/gc.ts); durations in milliseconds. */
  gc: { interval: number; deletionThreshold: number; ingestExpiry: number };
  /** Where blob bytes live; metadata, ingest state and leases stay in SQLite under root either way. */
  blobs: { backend: 'local' | 's3'; s3: S3Config };
}

/** [blobs.s3]: an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) and the local read cache in front of it. */
export interface S3Config {
  /** Empty for AWS itself. */
  endpoint: string;
  /** Empty to take it from the AWS environment (us-east-1 with a custom endpoint). */
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  /** Both empty to use the AWS credential chain (AWS_ACCESS_KEY_ID..., profile, instance role). */
  accessKeyId: string;
  secretAccessKey: string;
  /** Empty for <root>/s3-cache. */
  cacheDir: string;
  cacheMaxBytes: number;
}

export const DEFAULT_ROOT = 'data';

export function defaultConfig(): Config {
  return {
    root: resolve(DEFAULT_ROOT),
    grpc: {
      address: resolve(DEFAULT_ROOT, 'contentd.sock'),
      socketMode: 0o660,
      maxRecvMessageSize: 16 << 20,
      maxSendMessageSize: 16 << 20,
      socketSendBuffer: 2 << 20,
    },
    log: { level: 'info', format: 'text' },
    namespaces: { policy: 'shared' },
    limits: { maxActiveIngests: 0, maxBlobSize: 0 },
    metrics: { address: '' },
    gc: { interval: 10 * 60_000, deletionThreshold: 100, ingestExpiry: 24 * 3_600_000 },
    blobs: {
      backend: 'local',
      s3: { endpoint: '', region: '', bucket: '', prefix: '', forcePathStyle: false, accessKeyId: '', secretAccessKey: '', cacheDir: '', cacheMaxBytes: 10 * 1024 ** 3 },
    },
  };
}

export class ConfigError extends Error {}

type Table = Record<string, unknown>;

function table(value: unknown, where: string): Table {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where} must be a table`);
  return value as Table;
}

function str(t: Table, key: string, where: string): string | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${where}.${key} must be a string`);
  return v;
}

function int(t: Table, key: string, where: string): number | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new ConfigError(`${where}.${key} must be a non-negative integer`);
  return n;
}

function oneOf<T extends string>(t: Table, key: string, where: string, allowed: readonly T[]): T | undefined {
  const v = str(t, key, where);
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new ConfigError(`${where}.${key} must be one of ${allowed.join(', ')}`);
  return v as T;
}

function bool(t: Table, key: string, where: string): boolean | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${where}.${key} must be true or false`);
  return v;
}

function mode(t: Table, key: string, where: string): number | undefined {
  const v = str(t, key, where);
  if (v === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(v)) throw new ConfigError(`${where}.${key} must be an octal mode such as "0660"`);
  return parseInt(v, 8);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration ("90s", "1h30m", "500ms", "0") in milliseconds. */
function duration(t: Table, key: string, where: string): number | undefined {
  const v = str(t, key, where);
  if (v === undefined) return undefined;
  if (v === '0') return 0;
  const parts = [...v.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== v) {
    throw new ConfigError(`${where}.${key} must be a duration such as "90s", "10m" or "24h"`);
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * DURATION_UNITS[p[2]!]!, 0));
}

/** Every key the loader accepts, by section ('' for top level); config.example.toml must document each (test/config.test.ts). */
export const KNOWN: Record<string, readonly string[]> = {
  '': ['root', 'grpc', 'log', 'namespaces', 'limits', 'metrics', 'gc', 'blobs'],
  grpc: ['address', 'socket_mode', 'uid', 'gid', 'max_recv_message_size', 'max_send_message_size', 'socket_send_buffer'],
  log: ['level', 'format'],
  namespaces: ['policy'],
  limits: ['max_active_ingests', 'max_blob_size'],
  metrics: ['address'],
  gc: ['interval', 'deletion_threshold', 'ingest_expiry'],
  blobs: ['backend', 's3'],
  'blobs.s3': ['endpoint', 'region', 'bucket', 'prefix', 'force_path_style', 'access_key_id', 'secret_access_key', 'cache_dir', 'cache_max_bytes'],
};

function rejectUnknown(t: Table, section: string): void {
  for (const key of Object.keys(t)) {
    if (!KNOWN[section]!.includes(key)) throw new ConfigError(`unknown configuration key ${section ? `${section}.` : ''}${key}`);
  }
}

/** Reads a TOML file over the defaults; relative paths resolve against the file's directory. */
export function loadConfig(file?: string): Config {
  const config = defaultConfig();
  if (!file) return config;
  let doc: Table;
  try {
    doc = parse(readFileSync(file, 'utf8')) as Table;
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  const base = resolve(file, '..');
  rejectUnknown(doc, '');
  const grpc = table(doc.grpc, 'grpc');
  const log = table(doc.log, 'log');
  const namespaces = table(doc.namespaces, 'namespaces');
  const limits = table(doc.limits, 'limits');
  const metrics = table(doc.metrics, 'metrics');
  const gc = table(doc.gc, 'gc');
  for (const [name, t] of Object.entries({ grpc, log, namespaces, limits, metrics, gc })) rejectUnknown(t, name);

  const root = str(doc, 'root', 'root');
  if (root !== undefined) {
    config.root = resolve(base, root);
    config.grpc.address = resolve(config.root, 'contentd.sock');
  }
  const address = str(grpc, 'address', 'grpc');
  if (address !== undefined) config.grpc.address = resolve(base, address);
  config.grpc.socketMode = mode(grpc, 'socket_mode', 'grpc') ?? config.grpc.socketMode;
  config.grpc.uid = int(grpc, 'uid', 'grpc');
  config.grpc.gid = int(grpc, 'gid', 'grpc');
  config.grpc.maxRecvMessageSize = int(grpc, 'max_recv_message_size', 'grpc') ?? config.grpc.maxRecvMessageSize;
  config.grpc.maxSendMessageSize = int(grpc, 'max_send_message_size', 'grpc') ?? config.grpc.maxSendMessageSize;
  config.grpc.socketSendBuffer = int(grpc, 'socket_send_buffer', 'grpc') ?? config.grpc.socketSendBuffer;
  config.log.level = oneOf(log, 'level', 'log', ['error', 'warn', 'info', 'debug'] as const) ?? config.log.level;
  config.log.format = oneOf(log, 'format', 'log', ['text', 'json'] as const) ?? config.log.format;
  config.namespaces.policy = oneOf(namespaces, 'policy', 'namespaces', ['shared', 'isolated'] as const) ?? config.namespaces.policy;
  config.limits.maxActiveIngests = int(limits, 'max_active_ingests', 'limits') ?? 0;
  config.limits.maxBlobSize = int(limits, 'max_blob_size', 'limits') ?? 0;
  config.metrics.address = str(metrics, 'address', 'metrics') ?? '';
  config.gc.interval = duration(gc, 'interval', 'gc') ?? config.gc.interval;
  config.gc.deletionThreshold = int(gc, 'deletion_threshold', 'gc') ?? config.gc.deletionThreshold;
  config.gc.ingestExpiry = duration(gc, 'ingest_expiry', 'gc') ?? config.gc.ingestExpiry;
  config.blobs = loadBlobs(table(doc.blobs, 'blobs'), base, config.blobs);
  return config;
}

function loadBlobs(blobs: Table, base: string, defaults: Config['blobs']): Config['blobs'] {
  rejectUnknown(blobs, 'blobs');
  const t = table(blobs.s3, 'blobs.s3');
  rejectUnknown(t, 'blobs.s3');
  const where = 'blobs.s3';
  const backend = oneOf(blobs, 'backend', 'blobs', ['local', 's3'] as const) ?? defaults.backend;
  const cacheDir = str(t, 'cache_dir', where);
  const s3: S3Config = {
    endpoint: str(t, 'endpoint', where) ?? defaults.s3.endpoint,
    region: str(t, 'region', where) ?? defaults.s3.region,
    bucket: str(t, 'bucket', where) ?? defaults.s3.bucket,
    prefix: str(t, 'prefix', where) ?? defaults.s3.prefix,
    forcePathStyle: bool(t, 'force_path_style', where) ?? defaults.s3.forcePathStyle,
    accessKeyId: str(t, 'access_key_id', where) ?? defaults.s3.accessKeyId,
    secretAccessKey: str(t, 'secret_access_key', where) ?? defaults.s3.secretAccessKey,
    cacheDir: cacheDir ? resolve(base, cacheDir) : defaults.s3.cacheDir,
    cacheMaxBytes: int(t, 'cache_max_bytes', where) ?? defaults.s3.cacheMaxBytes,
  };
  if (s3.endpoint && !URL.canParse(s3.endpoint)) throw new ConfigError(`${where}.endpoint must be a URL such as "https://s3.example.com"`);
  if (!s3.accessKeyId !== !s3.secretAccessKey) throw new ConfigError(`${where}.access_key_id and ${where}.secret_access_key go together`);
  if (backend === 's3' && !s3.bucket) throw new ConfigError(`${where}.bucket must be set when blobs.backend is "s3"`);
  return { backend, s3 };
}

/** Command-line flags common to every command. */
export interface CommonFlags {
  config?: string;
  root?: string;
  address?: string;
}

export function resolveConfig(flags: CommonFlags): Config {
  const config = loadConfig(flags.config);
  if (flags.root) {
    const rootChanged = config.grpc.address === resolve(config.root, 'contentd.sock');
    config.root = resolve(flags.root);
    if (rootChanged) config.grpc.address = resolve(config.root, 'contentd.sock');
  }
  if (flags.address) config.grpc.address = resolve(flags.address);
  return config;
}

/** Settings that differ between two configurations, by their TOML names (e.g. "grpc.socket_mode"). */
export function changedSettings(before: Config, after: Config): string[] {
  const flat = (value: unknown, prefix: string, out: Map<string, string>): Map<string, string> => {
    if (typeof value === 'object' && value !== null) {
      for (const [key, v] of Object.entries(value)) flat(v, `${prefix}${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}.`, out);
    } else {
      out.set(prefix.slice(0, -1), String(value));
    }
    return out;
  };
  const a = flat(before, '', new Map());
  const b = flat(after, '', new Map());
  return [...new Set([...a.keys(), ...b.keys()])].filter((key) => a.get(key) !== b.get(key)).sort();
}
