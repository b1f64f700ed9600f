/**
 * Wall-clock time in nanoseconds. containerd's test suite compares created,
 * updated and started timestamps with its own clock, so millisecond values
 * (Date.now()) would fall before a client's "before" reading. The high
 * resolution monotonic clock is anchored to the moment Date.now() ticks,
 * bracketed closely by two monotonic readings.
 */
let anchorWall = 0n;
let anchorMono = 0n;
let last = 0n;

/** Longest bracket around the millisecond tick accepted as the anchor (the thread may be preempted mid-way on a busy machine). */
const MAX_BRACKET_NS = 5_000n;

function calibrate(): void {
  for (;;) {
    const start = Date.now();
    let before = process.hrtime.bigint();
    let now = Date.now();
    while (now === start) {
      before = process.hrtime.bigint();
      now = Date.now();
    }
    // The tick fell between before and after: anchoring at before errs a few microseconds ahead, never behind a client's clock.
    const after = process.hrtime.bigint();
    if (after - before <= MAX_BRACKET_NS) {
      anchorMono = before;
      anchorWall = BigInt(now) * 1_000_000n;
      return;
    }
  }
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
