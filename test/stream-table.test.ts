// The connection's table of streams (src/rpc/http2/stream-table.ts): what
// the connection relies on from it, in place of a Map and a Set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerStream, type StreamOwner } from '../src/rpc/http2/stream';
import { StreamTable } from '../src/rpc/http2/stream-table';

const owner: StreamOwner = { consumed: () => undefined, sendHeaders: () => undefined, wake: () => undefined, cancel: () => undefined };
const stream = (id: number): ServerStream => new ServerStream(id, {}, 65_535, 65_535, owner);

test('streams are found by id, counted once however often added, and removed only by their own object', () => {
  const table = new StreamTable();
  const [a, b] = [stream(1), stream(3)];
  table.add(a);
  table.add(a);
  table.add(b);
  assert.equal(table.size, 2);
  assert.equal(table.get(1), a);
  assert.equal(table.get(5), undefined);
  // Another stream object with a's id (a bug elsewhere) must not take a's entry out.
  table.delete(stream(1));
  assert.equal(table.get(1), a);
  table.delete(a);
  table.delete(a);
  assert.equal(table.size, 1);
  assert.deepEqual(table.values(), [b]);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(3), undefined);
});

test('a walk skips streams removed during it, as iterating a Set does', () => {
  const table = new StreamTable();
  const streams = [1, 3, 5, 7].map(stream);
  for (const s of streams) table.add(s);
  const seen: number[] = [];
  table.forEach((s) => {
    seen.push(s.id);
    // The first stream's turn removes the third, which must not be visited.
    if (s.id === 1) table.delete(streams[2]!);
  });
  assert.deepEqual(seen, [1, 3, 7]);
  assert.equal(table.size, 3);
});
