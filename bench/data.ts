import { createHash, randomBytes } from 'node:crypto';

/** Write size of the ingest rows, and the unit blobs are generated in. */
export const MiB = 1 << 20;

/** Random pages the synthetic blobs are assembled from: big blobs without holding them in memory. */
const POOL_PAGES = 8;
let pool: Buffer[] | undefined;

/**
 * A blob of random-looking bytes, generated page by page on demand so a
 * 1 GiB blob costs no memory. Each page is a random pool page stamped with
 * the blob's seed and the page number: every blob (and every run) has its
 * own digest, so no store can answer "already exists".
 */
export class SyntheticBlob {
  private static readonly made = new Map<string, SyntheticBlob>();
  readonly digest: string;

  /** The same blob for every target in a run: its digest is computed once. */
  static of(size: number, seed: number): SyntheticBlob {
    const key = `${size}:${seed}`;
    let blob = SyntheticBlob.made.get(key);
    if (!blob) SyntheticBlob.made.set(key, (blob = new SyntheticBlob(size, seed)));
    return blob;
  }

  constructor(
    readonly size: number,
    private readonly seed: number,
  ) {
    const hash = createHash('sha256');
    for (const page of this.pages()) hash.update(page);
    this.digest = `sha256:${hash.digest('hex')}`;
  }

  /** The bytes in 1 MiB pieces (the last one shorter). */
  *pages(): Iterable<Buffer> {
    pool ??= Array.from({ length: POOL_PAGES }, () => randomBytes(MiB));
    for (let index = 0; index * MiB < this.size; index++) {
      const length = Math.min(MiB, this.size - index * MiB);
      const page = Buffer.allocUnsafe(length);
      pool[(index + this.seed) % POOL_PAGES]!.copy(page, 0, 0, length);
      if (length >= 8) {
        page.writeUInt32LE(this.seed >>> 0, 0);
        page.writeUInt32LE(index, 4);
      }
      yield page;
    }
  }
}

/** A small blob with a random body: its digest is computed once, up front. */
export function smallBlob(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}
