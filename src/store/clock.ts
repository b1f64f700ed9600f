/**
 * Wall-clock time in nanoseconds. containerd's test suite compares created,
 * updated and started timestamps with its own clock, so millisecond values
 * (Date.now()) would fall before a client's "before" reading. The high
 * resolution monotonic clock is anchored to the moment Date.now() ticks.
 */

/** A wall-clock millisecond boundary and a monotonic reading taken no later than it. */
export interface Anchor {
  wallNs: bigint;
  monoNs: bigint;
}

/** Longest bracket around the millisecond tick accepted as the anchor (the thread may be preempted mid-way on a busy machine). */
const MAX_BRACKET_NS = 5_000n;

/**
 * Finds a millisecond tick of wallMs and the monotonic time just before it.
 * The tick fell after the last call of wallMs that still returned the old
 * millisecond and before the one that returned the new: the anchor is a
 * monotonic reading taken before that last old call, so it errs a few
 * microseconds ahead of the wall clock, never behind a client's. (Reading
 * after the old call would miss a tick that passed while the thread was
 * preempted in between, and put every timestamp up to a millisecond behind.)
 */
export function findTick(wallMs: () => number, monoNs: () => bigint, maxBracketNs = MAX_BRACKET_NS): Anchor {
  for (;;) {
    const start = wallMs();
    let lastOld: bigint | undefined;
    for (;;) {
      const before = monoNs();
      const now = wallMs();
      if (now === start) {
        lastOld = before;
        continue;
      }
      const after = monoNs();
      if (lastOld !== undefined && after - lastOld <= maxBracketNs) return { wallNs: BigInt(now) * 1_000_000n, monoNs: lastOld };
      break;
    }
  }
}

const monotonic = (): bigint => process.hrtime.bigint();
let anchor = findTick(Date.now, monotonic);
let last = 0n;

export function nowNs(): bigint {
  let t = anchor.wallNs + (monotonic() - anchor.monoNs);
  const wall = BigInt(Date.now()) * 1_000_000n;
  // The system clock was stepped: re-anchor rather than drift away from it.
  if (t < wall || t > wall + 2_000_000n) {
    anchor = findTick(Date.now, monotonic);
    t = anchor.wallNs + (monotonic() - anchor.monoNs);
  }
  if (t <= last) t = last + 1n;
  last = t;
  return t;
}
