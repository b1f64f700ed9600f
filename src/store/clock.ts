/**
 * Wall-clock time in nanoseconds. containerd's test suite compares created,
 * updated and started timestamps with its own clock, so millisecond values
 * (Date.now()) would fall before a client's "before" reading. The high
 * resolution monotonic clock is anchored to the moment Date.now() ticks.
 */
let anchorWall = 0n;
let anchorMono = 0n;
let last = 0n;

function calibrate(): void {
  const start = Date.now();
  let now = Date.now();
  while (now === start) now = Date.now();
  anchorMono = process.hrtime.bigint();
  anchorWall = BigInt(now) * 1_000_000n;
}

calibrate();

export function nowNs(): bigint {
  let t = anchorWall + (process.hrtime.bigint() - anchorMono);
  const wall = BigInt(Date.now()) * 1_000_000n;
  // The system clock was stepped: re-anchor rather than drift away from it.
  if (t < wall || t > wall + 2_000_000n) {
    calibrate();
    t = anchorWall + (process.hrtime.bigint() - anchorMono);
  }
  if (t <= last) t = last + 1n;
  last = t;
  return t;
}
