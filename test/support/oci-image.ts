// Builds OCI image archives in pure Node, for `ctr images import` and the
// benchmark: gzip layers of generated files (deterministic for a given seed,
// nothing downloaded), an image config, a manifest, index.json and oci-layout,
// packed in a tar. Also reads tar archives back (e.g. `ctr images export` output).
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface OciImageOptions {
  /** Directory receiving the archive (image.tar) and an OCI layout of its blobs; created if missing. */
  dir: string;
  /** Full image name, stored as io.containerd.image.name. */
  name?: string;
  /** Number of gzip layers. */
  layers?: number;
  /** Bytes of file data in each layer (before compression). */
  layerSize?: number;
  filesPerLayer?: number;
  /** Share (0..1) of each file that is random, hence incompressible; the rest is repeated text. */
  randomShare?: number;
  /**
   * Same seed, same bytes: layer i is the same blob in every image built with
   * the same seed, layerSize, filesPerLayer and randomShare (so two images can share layers).
   */
  seed?: string;
}

export interface OciImage {
  /** The OCI archive, for `ctr images import`. */
  archive: string;
  name: string;
  manifest: BlobDescriptor;
  config: BlobDescriptor;
  layers: BlobDescriptor[];
  /** Digests of the uncompressed layer tars, in order. */
  diffIds: string[];
  /** Every blob of the image: digest → its file under <dir>/blobs/sha256. */
  blobs: Map<string, string>;
  /** Sum of the sizes of all blobs. */
  size: number;
}

/** Go's name for this machine's architecture, as image configs spell it. */
export function goArch(arch: string = process.arch): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return names[arch] ?? arch;
}

/** Fixed mtime so that the same seed gives the same layer digests. */
const MTIME = 1_700_000_000;
const CHUNK = 1 << 20;

export async function buildOciImage(options: OciImageOptions): Promise<OciImage> {
  const name = options.name ?? 'localhost/contentd-e2e:latest';
  const layerCount = options.layers ?? 3;
  const layerSize = options.layerSize ?? 8 << 20;
  const filesPerLayer = Math.max(1, options.filesPerLayer ?? 4);
  const randomShare = options.randomShare ?? 0.75;
  const seed = options.seed ?? 'contentd';
  const blobsDir = join(options.dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const blobs = new Map<string, string>();

  const layers: BlobDescriptor[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < layerCount; i++) {
    const files: TarFile[] = [{ name: `layer${i}/`, type: 'dir' }];
    const readme = Buffer.from(`contentd test layer ${i}, seed ${seed}\n`);
    files.push({ name: `layer${i}/README`, type: 'file', size: readme.length, content: [readme] });
    for (let j = 0; j < filesPerLayer; j++) {
      const size = Math.floor(layerSize / filesPerLayer) + (j === filesPerLayer - 1 ? layerSize % filesPerLayer : 0);
      files.push({ name: `layer${i}/data${j}.bin`, type: 'file', size, content: generate(`${seed}/${i}/${j}`, size, randomShare) });
    }
    const { digest, size, diffId } = await writeLayer(blobsDir, files);
    blobs.set(digest, blobPath(blobsDir, digest));
    layers.push({ mediaType: MEDIA_TYPES.layerGzip, digest, size });
    diffIds.push(diffId);
  }

  const created = new Date(MTIME * 1000).toISOString();
  const config = await writeJsonBlob(blobsDir, blobs, MEDIA_TYPES.config, {
    created,
    architecture: goArch(),
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created, created_by: `contentd test layer ${i}` })),
  });
  const manifest = await writeJsonBlob(blobsDir, blobs, MEDIA_TYPES.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config,
    layers,
  });
  const tag = /:(\w[\w.-]*)$/.exec(name)?.[1] ?? 'latest';
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.index,
      manifests: [
        {
          ...manifest,
          platform: { architecture: goArch(), os: 'linux' },
          annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(options.dir, 'index.json'), index);
  await writeFile(join(options.dir, 'oci-layout'), layout);

  const archive = join(options.dir, 'image.tar');
  const entries: TarFile[] = [
    { name: 'oci-layout', type: 'file', size: layout.length, content: [layout] },
    { name: 'index.json', type: 'file', size: index.length, content: [index] },
    { name: 'blobs/', type: 'dir' },
    { name: 'blobs/sha256/', type: 'dir' },
  ];
  const all = [...layers, config, manifest];
  for (const blob of all) {
    entries.push({ name: `blobs/sha256/${hexOf(blob.digest)}`, type: 'file', size: blob.size, content: createReadStream(blobs.get(blob.digest)!) });
  }
  const out = createWriteStream(archive);
  await writeTar(out, entries);
  out.end();
  await once(out, 'close');
  return { archive, name, manifest, config, layers, diffIds, blobs, size: all.reduce((n, b) => n + b.size, 0) };
}

// ---- tar ----

export type TarFile =
  | { name: string; type: 'dir'; mode?: number }
  | { name: string; type: 'file'; size: number; content: AsyncIterable<Buffer> | Iterable<Buffer>; mode?: number };

/** Writes entries as a ustar archive (with its two zero end blocks), honouring backpressure. */
export async function writeTar(out: Writable, entries: Iterable<TarFile>): Promise<void> {
  const put = async (data: Buffer): Promise<void> => {
    if (!out.write(data)) await once(out, 'drain');
  };
  for (const entry of entries) {
    const size = entry.type === 'file' ? entry.size : 0;
    await put(tarHeader(entry.name, entry.type, size, entry.mode ?? (entry.type === 'dir' ? 0o755 : 0o644)));
    if (entry.type !== 'file') continue;
    let written = 0;
    for await (const chunk of entry.content) {
      written += chunk.length;
      await put(chunk);
    }
    if (written !== size) throw new Error(`tar: ${entry.name}: wrote ${written} bytes, declared ${size}`);
    if (size % 512) await put(Buffer.alloc(512 - (size % 512)));
  }
  await put(Buffer.alloc(1024));
}

function tarHeader(path: string, type: 'dir' | 'file', size: number, mode: number): Buffer {
  const header = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf('/', path.length - 2);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: name too long: ${path}`);
  }
  const octal = (value: number, offset: number, length: number): void => {
    header.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'ascii');
  };
  header.write(name, 0, 100, 'utf8');
  octal(mode, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(MTIME, 136, 12);
  header.write(type === 'dir' ? '5' : '0', 156, 1, 'ascii');
  header.write('ustar\u000000', 257, 8, 'ascii');
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  header.write(prefix, 345, 155, 'utf8');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}

/** The regular files of a tar archive: path → bytes (pax and GNU long names honoured). */
export async function readTar(path: string): Promise<Map<string, Buffer>> {
  const data = await readFile(path);
  const files = new Map<string, Buffer>();
  let longName: string | undefined;
  for (let at = 0; at + 512 <= data.length; ) {
    const header = data.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (offset: number, length: number): string => header.toString('utf8', offset, offset + length).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const prefix = field(345, 155);
    const body = data.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (paxPath) longName = paxPath[1];
      continue;
    }
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'g') continue;
    const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type === '0' || type === '7') files.set(name.replace(/^\.\//, ''), Buffer.from(body));
  }
  return files;
}

// ---- blobs ----

/** Deterministic bytes: AES-CTR keystream (fast, incompressible) then repeated text. */
async function* generate(seed: string, size: number, randomShare: number): AsyncIterable<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const randomBytes = Math.floor(size * Math.min(1, Math.max(0, randomShare)));
  const zeros = Buffer.alloc(CHUNK);
  for (let done = 0; done < randomBytes; ) {
    const n = Math.min(CHUNK, randomBytes - done);
    yield cipher.update(zeros.subarray(0, n));
    done += n;
  }
  const line = Buffer.from(`${seed}: the quick brown fox jumps over the lazy dog\n`);
  const text = Buffer.alloc(CHUNK, line);
  for (let done = randomBytes; done < size; ) {
    const n = Math.min(CHUNK, size - done);
    yield text.subarray(0, n);
    done += n;
  }
}

/** A pass-through stream that hashes and counts what flows through it. */
function tap(hash: Hash, counter: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      counter.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

async function writeLayer(blobsDir: string, files: TarFile[]): Promise<{ digest: string; size: number; diffId: string }> {
  const tarHash = createHash('sha256');
  const gzHash = createHash('sha256');
  const tarCount = { bytes: 0 };
  const gzCount = { bytes: 0 };
  const temp = join(blobsDir, `.layer-${process.pid}-${Date.now()}`);
  const source = new PassThrough({ highWaterMark: CHUNK });
  const piped = pipeline(source, tap(tarHash, tarCount), createGzip({ level: 1 }), tap(gzHash, gzCount), createWriteStream(temp));
  await writeTar(source, files);
  source.end();
  await piped;
  const digest = `sha256:${gzHash.digest('hex')}`;
  await rename(temp, blobPath(blobsDir, digest));
  return { digest, size: gzCount.bytes, diffId: `sha256:${tarHash.digest('hex')}` };
}

async function writeJsonBlob(blobsDir: string, blobs: Map<string, string>, mediaType: string, value: unknown): Promise<BlobDescriptor> {
  const data = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const path = blobPath(blobsDir, digest);
  await writeFile(path, data);
  blobs.set(digest, path);
  return { mediaType, digest, size: data.length };
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

function blobPath(blobsDir: string, digest: string): string {
  return join(blobsDir, hexOf(digest));
}
