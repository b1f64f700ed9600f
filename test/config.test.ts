import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'smol-toml';
import { ConfigError, KNOWN, defaultConfig, loadConfig } from '../src/config/config';

/**
 * config.example.toml is the configuration reference: it must load with the
 * real loader and mention every key the loader knows, so that it cannot
 * drift from src/config/config.ts.
 */
const EXAMPLE = resolve(__dirname, '..', '..', 'config.example.toml');

/** Optional keys (and tables) are shown commented out as "# key = value" ("# [table]"); this enables them. */
function enableOptionalKeys(text: string): string {
  return text.replace(/^# (\[[a-z0-9_.]+\]|[a-z0-9_]+ = .*)$/gm, '$1');
}

/** Dotted path of every value in a parsed document, tables themselves excluded. */
function keysOf(doc: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(doc).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? keysOf(value as Record<string, unknown>, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

/** Dotted path of every value key the loader knows; entries of KNOWN that are tables themselves are excluded. */
function knownKeys(): string[] {
  return Object.entries(KNOWN).flatMap(([table, keys]) => keys.map((key) => (table ? `${table}.${key}` : key)).filter((path) => !(path in KNOWN)));
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'contentd-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('config.example.toml', () => {
  test('loads with the real loader and holds the production paths', () => {
    const config = loadConfig(EXAMPLE);
    assert.equal(config.root, '/var/lib/contentd');
    assert.equal(config.grpc.address, '/run/contentd/contentd.sock');
    const defaults = defaultConfig();
    // Everything else in the example is the default, so the comments saying so are true.
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    assert.deepEqual(plain({ ...config, root: defaults.root, grpc: { ...config.grpc, address: defaults.grpc.address } }), plain(defaults));
  });

  test('documents every key the loader accepts (and, since it loads, no other)', async () => {
    const text = enableOptionalKeys(await readFile(EXAMPLE, 'utf8'));
    const file = join(dir, 'all-keys.toml');
    await writeFile(file, text);
    // The commented-out values must be valid too.
    loadConfig(file);
    const documented = new Set(keysOf(parse(text) as Record<string, unknown>));
    const missing = knownKeys().filter((key) => !documented.has(key));
    assert.deepEqual(missing, [], `config.example.toml does not document ${missing.join(', ')}: add each with its default and a comment`);
  });
});

describe('config loader', () => {
  const load = async (name: string, text: string) => {
    const file = join(dir, name);
    await writeFile(file, text);
    return () => loadConfig(file);
  };

  test('rejects unknown keys at the top level, in a section, and unknown sections', async () => {
    assert.throws(await load('top.toml', 'rooot = "/x"\n'), (e: unknown) => e instanceof ConfigError && /unknown configuration key rooot/.test(e.message));
    assert.throws(await load('section.toml', '[grpc]\nadress = "/x.sock"\n'), (e: unknown) => e instanceof ConfigError && /unknown configuration key grpc\.adress/.test(e.message));
    assert.throws(await load('table.toml', '[metric]\naddress = "127.0.0.1:1"\n'), (e: unknown) => e instanceof ConfigError && /unknown configuration key metric/.test(e.message));
  });

  test('rejects values of the wrong type or out of range', async () => {
    assert.throws(await load('level.toml', '[log]\nlevel = "verbose"\n'), /log\.level must be one of/);
    assert.throws(await load('mode.toml', '[grpc]\nsocket_mode = 660\n'), /grpc\.socket_mode must be a string/);
    assert.throws(await load('size.toml', '[limits]\nmax_blob_size = -1\n'), /limits\.max_blob_size must be a non-negative integer/);
  });

  test('resolves relative paths against the file and derives the socket from root', async () => {
    const config = (await load('relative.toml', 'root = "store"\n'))();
    assert.equal(config.root, join(dir, 'store'));
    assert.equal(config.grpc.address, join(dir, 'store', 'contentd.sock'));
  });
});
