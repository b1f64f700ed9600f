import { MiB } from './data';
import type { BenchDriver } from './driver';

/** How much untimed work each target serves before its first measured row. */
export interface WarmUpSizes {
  blobs: number;
  infoCalls: number;
  bigBlob: number;
}

/**
 * Serves every kind of call the rows make, untimed, on a newly started
 * target, so that the rows measure a store that has been running (as a
 * containerd host's store has), not the first few thousand calls of a new
 * process: V8 compiles contentd's hot paths only after they have run many
 * times, and before that they cost up to twice as much CPU (fresh 4 KiB
 * blobs: 160 µs per blob on the first 2,000, 75 µs after). Every target gets
 * the same warm-up, containerd's own store too; it writes content of its own
 * (refs warm-up-*), which the measured rows never read.
 */
export async function warmUp(driver: BenchDriver, sizes: WarmUpSizes, concurrency: number): Promise<void> {
  const { digests } = await driver.commitSmall('warm-up-small', sizes.blobs, 4096, concurrency);
  await driver.info(digests, sizes.infoCalls, concurrency);
  await driver.readSmall(digests, concurrency);
  const big = await driver.ingest('warm-up-big', sizes.bigBlob, 1);
  await driver.read(big.digest, sizes.bigBlob, MiB);
  await driver.read(big.digest, sizes.bigBlob, 32 * 1024);
}
