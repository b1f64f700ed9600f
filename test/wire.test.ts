// contentd's own codecs for the Content service (src/server/wire.ts) against
// the generated ones: the same bytes on the wire.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ContentService, InfoRequest, ReadContentRequest, type InfoResponse } from '../generated/containerd/services/content/v1/content';
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

  test('Info and Read requests decoded by hand give what the generated decoder gives, and anything unusual goes to it', () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    const encodedRead = (m: ReadContentRequest): Buffer => Buffer.from(ReadContentRequest.encode(m).finish());
    const reads: Buffer[] = [
      encodedRead({ digest, offset: 0, size: 0 }),
      encodedRead({ digest, offset: 32_768, size: 32_768 }),
      encodedRead({ digest, offset: 2 ** 49 - 1, size: 1 }),
      encodedRead({ digest, offset: 2 ** 49, size: 2 ** 52 }),
      encodedRead({ digest, offset: -1, size: -5 }),
      encodedRead({ digest: 'ünïcødé', offset: 1, size: 2 }),
      encodedRead({ digest: 'd'.repeat(200), offset: 1, size: 2 }),
      Buffer.alloc(0),
      // Fields out of order and repeated (the last wins), a zero-padded varint.
      Buffer.concat([Buffer.from([0x18, 0x05]), encodedRead({ digest: 'first', offset: 0, size: 0 }), encodedRead({ digest, offset: 7, size: 0 }), Buffer.from([0x18, 0x80, 0x00])]),
      // An unknown field, a wrong wire type for offset.
      Buffer.concat([encodedRead({ digest, offset: 1, size: 1 }), Buffer.from([0x20, 0x01])]),
      Buffer.concat([encodedRead({ digest, offset: 0, size: 0 }), Buffer.from([0x12, 0x01, 0x41])]),
    ];
    for (const bytes of reads) {
      assert.deepEqual(CONTENT_DEFINITION.read.requestDeserialize(bytes), ContentService.read.requestDeserialize(bytes), bytes.toString('hex'));
    }
    const infos: Buffer[] = [
      Buffer.from(InfoRequest.encode({ digest }).finish()),
      Buffer.from(InfoRequest.encode({ digest: 'ünïcødé' }).finish()),
      Buffer.alloc(0),
      // Offset and size are not InfoRequest's fields: skipped, as the generated decoder does.
      encodedRead({ digest, offset: 5, size: 6 }),
    ];
    for (const bytes of infos) {
      assert.deepEqual(CONTENT_DEFINITION.info.requestDeserialize(bytes), ContentService.info.requestDeserialize(bytes), bytes.toString('hex'));
    }
    // A length running past the end, or missing, fails as it does in the generated decoder.
    for (const truncated of [encodedRead({ digest, offset: 0, size: 0 }).subarray(0, 20), Buffer.from([0x0a])]) {
      assert.throws(() => ContentService.read.requestDeserialize(truncated));
      assert.throws(() => CONTENT_DEFINITION.read.requestDeserialize(truncated), truncated.toString('hex'));
      assert.throws(() => CONTENT_DEFINITION.info.requestDeserialize(truncated), truncated.toString('hex'));
    }
  });
});
