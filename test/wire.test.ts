// contentd's own codecs for the Content service (src/server/wire.ts) against
// the generated ones: the same bytes on the wire.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ContentService, type InfoResponse } from '../generated/containerd/services/content/v1/content';
import { CONTENT_DEFINITION } from '../src/server/wire';

/** The bytes alone: a hand-made response also carries the frame it was allocated in. */
const bytes = (b: Buffer): Buffer => Buffer.from(b);

describe('response serializers', () => {
  const response: InfoResponse = {
    info: {
      digest: `sha256:${'ab'.repeat(32)}`,
      size: 123_456,
      createdAt: { seconds: 1_700_000_000, nanos: 5 },
      updatedAt: { seconds: 1_700_000_001, nanos: 0 },
      labels: { 'containerd.io/gc.root': '2026-11-30T00:00:00Z', key: 'v'.repeat(300) },
    },
  };

  test('one shared writer gives the generated codec’s bytes, call after call; a message that fails half-way leaves the next intact', () => {
    const expected = ContentService.info.responseSerialize(response);
    assert.deepEqual(bytes(CONTENT_DEFINITION.info.responseSerialize(response)), expected);
    assert.deepEqual(bytes(CONTENT_DEFINITION.info.responseSerialize(response)), expected, 'the second time too');
    // The digest and the fork for the nested Info are written before the size fails.
    const broken = { info: { ...response.info!, size: 'not a number' as unknown as number } };
    assert.throws(() => CONTENT_DEFINITION.info.responseSerialize(broken));
    assert.deepEqual(bytes(CONTENT_DEFINITION.info.responseSerialize(response)), expected, 'after a failed message');
    // A Read response not built in wire form (a short read) goes through the same writer.
    const short = { offset: 4096, data: Buffer.from('the last bytes') };
    assert.deepEqual(CONTENT_DEFINITION.read.responseSerialize(short), ContentService.read.responseSerialize(short));
    // Each result is its own: the writer's next message does not change an earlier one.
    const first = CONTENT_DEFINITION.status.responseSerialize({ status: { ref: 'a', offset: 1, total: 2, expected: '', startedAt: undefined, updatedAt: undefined } });
    const copy = Buffer.from(first);
    CONTENT_DEFINITION.status.responseSerialize({ status: { ref: 'b'.repeat(500), offset: 9, total: 9, expected: '', startedAt: undefined, updatedAt: undefined } });
    assert.deepEqual(first, copy);
  });

  test('Info responses are written by hand with the generated codec’s bytes, whatever the fields hold', () => {
    const base = response.info!;
    const cases: InfoResponse[] = [
      response,
      { info: undefined },
      { info: { ...base, labels: {} } },
      { info: { ...base, size: 0, createdAt: undefined, updatedAt: { seconds: 0, nanos: 0 } } },
      { info: { ...base, createdAt: { seconds: 0, nanos: 999_999_999 }, updatedAt: { seconds: 2 ** 40, nanos: 0 } } },
      { info: { ...base, digest: '', labels: { '': 'empty key', 'empty value': '', 'ünïcødé 🐳': 'värde ✓', 'lone \ud800 surrogate': 'x' } } },
      { info: { ...base, size: 2 ** 53 - 1, labels: { long: 'l'.repeat(70_000) } } },
      // Outside the hand-written cases: negative and unsafe integers go through the generated encoder.
      { info: { ...base, size: -1 } },
      { info: { ...base, size: 2 ** 60 } },
      { info: { ...base, createdAt: { seconds: -5, nanos: 3 } } },
    ];
    for (const message of cases) {
      assert.deepEqual(bytes(CONTENT_DEFINITION.info.responseSerialize(message)), ContentService.info.responseSerialize(message), JSON.stringify(message).slice(0, 200));
    }
  });
});
