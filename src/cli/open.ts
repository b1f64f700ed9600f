import type { Command } from 'commander';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, type CommonFlags, type Config } from '../config/config';
import { MetadataDB } from '../db/metadata';

/** The configuration a command runs with: defaults, then --config, then --root (global or the command's own). */
export function commandConfig(command: Command): Config {
  return resolveConfig(command.optsWithGlobals<CommonFlags>());
}

/**
 * Runs fn with the store's metadata open read-only. Safe while a server
 * runs: SQLite's WAL gives readers the last committed state without blocking
 * the writer, and no lock is taken. Nothing here may write.
 */
export function withReadOnlyMetadata<T>(config: Config, fn: (db: MetadataDB) => T): T {
  const db = new MetadataDB(existingMetadataPath(config), { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** The store's metadata database, which a command that inspects a store needs to exist. */
export function existingMetadataPath(config: Config): string {
  const path = join(config.root, 'metadata.db');
  try {
    accessSync(path, constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`no content store at ${config.root} (${path} does not exist); pass --root or --config`);
    // The store is private to the server's user (0700).
    throw new Error(`cannot read ${path}: ${code ?? String(e)}${code === 'EACCES' ? '; run as the user the server runs as (root under the systemd unit)' : ''}`);
  }
  return path;
}
