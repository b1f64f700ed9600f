// The nanosecond clock's anchor, found on scripted clocks: a millisecond wall
// clock and a monotonic one that run together, with the thread "preempted"
// (time jumping by hundreds of microseconds) between calls. containerd's test
// suite checks every timestamp against its client's clock: an anchor behind
// the wall clock makes a timestamp fall before the client's "before" reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTick } from '../src/store/clock';

/** Clocks on one timeline: every call takes 101 ns, every preemptEvery-th call 400 µs (odd figures, so no preemption pattern lines up with the millisecond for ever). */
function scripted(wallMinusMonoNs: bigint, preemptEvery: number) {
  let mono = 1_000_000_000n;
  let calls = 0;
  const advance = (): void => {
    calls++;
    mono += calls % preemptEvery === 0 ? 400_003n : 101n;
  };
  return {
    wallMs: (): number => {
      advance();
      return Number((mono + wallMinusMonoNs) / 1_000_000n);
    },
    monoNs: (): bigint => {
      advance();
      return mono;
    },
  };
}

test('the anchor is never behind the wall clock and at most the bracket ahead, however the thread is preempted', () => {
  let checked = 0;
  for (let phase = 0n; phase < 1_000_000n; phase += 37_000n) {
    for (const preemptEvery of [7, 101, 333, 1001, 2999]) {
      const wallMinusMonoNs = 1_764_000_000_000_000_000n + phase;
      const { wallMs, monoNs } = scripted(wallMinusMonoNs, preemptEvery);
      const anchor = findTick(wallMs, monoNs, 5_000n);
      const ahead = anchor.wallNs - anchor.monoNs - wallMinusMonoNs;
      assert.ok(ahead >= 0n, `phase ${phase} ns, preempted every ${preemptEvery} calls: anchor ${ahead} ns behind the wall clock`);
      assert.ok(ahead <= 5_000n, `phase ${phase} ns, preempted every ${preemptEvery} calls: anchor ${ahead} ns ahead`);
      assert.equal(anchor.wallNs % 1_000_000n, 0n, 'anchored on a millisecond boundary');
      checked++;
    }
  }
  assert.equal(checked, 28 * 5);
});
