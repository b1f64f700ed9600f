// containerd's filter syntax: the parser against containerd's own filter and
// scanner test cases (filters/filter_test.go), then the three RPCs that take
// filters over a real socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { StoreError } from '../src/store/errors';
import { infoAdaptor, leaseAdaptor, parseFilters, statusAdaptor, type FieldAdaptor } from '../src/store/filters';
import { startTestServer, type TestServer } from './support/server';
import { contentClient, list, md, WriteSession, writeBlob } from './support/client';
import { WriteAction, type ContentClient } from '../generated/containerd/services/content/v1/content';

interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}

// containerd's corpus, index for index.
const corpus: Entry[] = [
  { name: 'foo', labels: { foo: 'true' } },
  { name: 'bar' },
  { name: 'foo', labels: { foo: 'present', 'more complex label': 'present' } },
  { name: 'bar', labels: { bar: 'true' } },
  { name: 'fooer', labels: { 'more complex label with \\ and "': 'present' } },
  { name: 'fooer', labels: { 'more complex label with \\ and ".post': 'present' } },
  { name: 'baz', other: 'too complex, yo' },
  { name: 'bazo', other: 'abc' },
  { name: 'compound', labels: { foo: 'omg_asdf.asdf-qwer' } },
];

const adapt =
  (e: Entry): FieldAdaptor =>
  (path) => {
    switch (path[0]) {
      case 'name':
        return e.name || undefined;
      case 'other':
        return e.other || undefined;
      case 'labels':
        return e.labels?.[path.slice(1).join('.')];
      default:
        return undefined;
    }
  };

function select(input: string): number[] {
  const filter = parseFilters([input]);
  return corpus.flatMap((e, i) => (filter.match(adapt(e)) ? [i] : []));
}

function parseError(input: string): StoreError {
  try {
    parseFilters([input]);
  } catch (e) {
    assert.ok(e instanceof StoreError);
    return e;
  }
  assert.fail(`${JSON.stringify(input)} parsed`);
}

const all = corpus.map((_, i) => i);

describe('filter parser (containerd filters/filter_test.go)', () => {
  const matching: Array<[string, number[]]> = [
    ['', all],
    ['name', all],
    ['labels.foo', [0, 2, 8]],
    ['labels.foo,name', [0, 2, 8]],
    ['labels.foo==true', [0]],
    ['labels.foo==omg_asdf.asdf-qwer', [8]],
    ['name==bar', [1, 3]],
    ['name!=bar', [0, 2, 4, 5, 6, 7, 8]],
    ['name==bar,labels.bar', [3]],
    ['other=="too complex, yo"', [6]],
    ['other~=[abc]+,name!=foo', [6, 7]],
    ['other~=/[abc]+/,name!=foo', [6, 7]],
    ['other~=/[abc]{1,2}/,name!=foo', [6, 7]],
    ['other~=/[abc]{0,1}"\\//,name!=foo', []],
    ['name==bar,labels.bar==true', [3]],
    ['name==bar,labels.bar==wrong', []],
    ['name==foo,labels."more complex label"', [2]],
    ['labels."more complex label with \\\\ and \\""==present', [4]],
    ['labels."more complex label with \\\\ and \\"".post==present', [5]],
  ];
  for (const [input, expected] of matching) {
    test(`matches ${JSON.stringify(input)}`, () => assert.deepEqual(select(input), expected));
  }

  // containerd's exact messages, plus the byte offset of the error.
  const errors: Array<[string, string]> = [
    ['labels.|foo|==omg_asdf.asdf-qwer', 'filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered (position 7)'],
    [
      'labels.?"more complex label with \\\\ and \\"".post==present',
      'filters: parse error: [labels. >|?|< "more complex label with \\\\ and \\"".post==present]: expected field or quoted (position 7)',
    ],
    ['name==foo,', 'filters: parse error: [name==foo,]: expected field or quoted (position 10)'],
    ['labels.', 'filters: parse error: [labels.]: expected field or quoted (position 7)'],
    ['image~=,id?=?fbaq', 'filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted (position 7)'],
    ['labels.ns/key==value', 'filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated (position 9)'],
    ['labels.key==/value', 'filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated (position 12)'],
  ];
  for (const [input, message] of errors) {
    test(`rejects ${JSON.stringify(input)} as containerd does`, () => {
      const err = parseError(input);
      assert.equal(err.kind, 'InvalidArgument');
      assert.equal(err.message, message);
    });
  }
});

describe('filter parser: scanner rules', () => {
  test('an unquoted key with a slash must be quoted; the quoted key matches', () => {
    assert.equal(parseError('labels.containerd.io/gc.root').kind, 'InvalidArgument');
    const filter = parseFilters(['labels."containerd.io/gc.root"']);
    assert.equal(filter.match(infoAdaptor({ digest: 'sha256:a', labels: { 'containerd.io/gc.root': 'x' } })), true);
    assert.equal(filter.match(infoAdaptor({ digest: 'sha256:a', labels: { other: 'x' } })), false);
  });

  test('dotted label keys: the rest of the path joined with dots', () => {
    const filter = parseFilters(['labels.a.b.c==v']);
    assert.equal(filter.match(infoAdaptor({ digest: 'd', labels: { 'a.b.c': 'v' } })), true);
    assert.equal(filter.match(infoAdaptor({ digest: 'd', labels: { a: 'v' } })), false);
  });

  test('spaces between tokens are skipped; after a value they are unexpected input', () => {
    assert.deepEqual(select(' name == bar'), [1, 3]);
    assert.match(parseError('name==bar ').message, /\[name==bar >\| \|< \]: unexpected input:   \(position 9\)$/);
  });

  test('a single = is an unsupported operator', () => {
    assert.match(parseError('name=bar').message, /unsupported operator "=" \(position 4\)/);
  });

  test('escapes in quoted values: \\n, \\x41, \\u00e9, octal; invalid escapes fail', () => {
    const value = (input: string) => {
      const filter = parseFilters([`labels.k==${input}`]);
      return (v: string) => filter.match(infoAdaptor({ digest: 'd', labels: { k: v } }));
    };
    assert.ok(value('"a\\nb"')('a\nb'));
    assert.ok(value('"\\x41\\u00e9\\101"')('AéA'));
    assert.match(parseError('labels.k=="\\g"').message, /illegal escape sequence/);
    assert.match(parseError('labels.k=="\\xaz"').message, /illegal numeric escape sequence/);
    assert.match(parseError('labels."a\nb"').message, /quoted literal not terminated/);
  });

  test('alternative quotes are for regexps only', () => {
    assert.match(parseError('name==/bar/').message, /invalid quote encountered \(position 6\)/);
    assert.deepEqual(select('name~=|^ba.$|'), [1, 3, 6]);
  });

  test('a null byte is illegal', () => {
    assert.match(parseError('na\u0000me').message, /unexpected null/);
  });

  test('positions are byte offsets, as in containerd', () => {
    // 牛 is one UTF-16 unit here but three bytes in Go.
    assert.match(parseError('name==牛 x').message, /unexpected input:   \(position 9\)$/);
  });

  test('regexps: unanchored, Go inline flags, invalid ones are InvalidArgument with their position', () => {
    assert.deepEqual(select('name~=ooe'), [4, 5]);
    assert.deepEqual(select('name~=(?i)^FOO$'), [0, 2]);
    assert.deepEqual(select('name~=/^(?P<n>ba)z$/'), [6]);
    const err = parseError('name==x,other~=[abc');
    assert.equal(err.kind, 'InvalidArgument');
    assert.match(err.message, /invalid regular expression: .* \(position 15\)$/);
  });

  test('several filters are ORed; an empty one matches everything', () => {
    const filter = parseFilters(['name==bar', 'labels.foo==true']);
    assert.deepEqual(
      corpus.flatMap((e, i) => (filter.match(adapt(e)) ? [i] : [])),
      [0, 1, 3],
    );
    const withEmpty = parseFilters(['name==bar', '']);
    assert.ok(corpus.every((e) => withEmpty.match(adapt(e))));
    assert.throws(() => parseFilters(['', 'name==']), StoreError);
  });

  test('!= matches absent fields; == and presence do not', () => {
    const info = infoAdaptor({ digest: 'sha256:x', labels: {} });
    assert.equal(parseFilters(['labels.a!=b']).match(info), true);
    assert.equal(parseFilters(['labels.a==b']).match(info), false);
    assert.equal(parseFilters(['labels.a']).match(info), false);
  });

  test('adaptors expose the fields containerd exposes', () => {
    const info = infoAdaptor({ digest: 'sha256:x', labels: { a: '1' } });
    assert.equal(parseFilters(['digest==sha256:x']).match(info), true);
    // containerd does not support size filters: size is never present.
    assert.equal(parseFilters(['size']).match(info), false);
    const status = statusAdaptor({ ref: 'r1' });
    assert.equal(parseFilters(['ref==r1']).match(status), true);
    assert.equal(parseFilters(['expected']).match(status), false);
    const lease = leaseAdaptor({ id: 'l1', labels: { 'containerd.io/gc.expire': 't' } });
    assert.equal(parseFilters(['id==l1,labels."containerd.io/gc.expire"']).match(lease), true);
    assert.equal(parseFilters(['id~=^m']).match(lease), false);
  });
});

describe('filters over gRPC: List and ListStatuses', () => {
  let server: TestServer;
  let client: ContentClient;
  const ns = md('filters');

  before(async () => {
    server = await startTestServer();
    client = contentClient(server.address);
    await writeBlob(client, 'a', Buffer.from('blob a'), { metadata: ns, labels: { 'containerd.io/gc.root': 'x', kind: 'a' } });
    await writeBlob(client, 'b', Buffer.from('blob b'), { metadata: ns, labels: { kind: 'b' } });
    const session = new WriteSession(client, ns);
    await session.send({ action: WriteAction.WRITE, ref: 'pending-1', offset: 0, data: Buffer.from('x') });
    await session.close();
    const other = new WriteSession(client, ns);
    await other.send({ action: WriteAction.WRITE, ref: 'other-2', offset: 0, data: Buffer.from('y') });
    await other.close();
  });

  after(async () => {
    client?.close();
    await server?.destroy();
  });

  test('List applies filters: quoted label keys, regexps, OR of several filters', async () => {
    const kinds = async (filters: string[]) => (await list(client, filters, ns)).map((i) => i.labels.kind).sort();
    assert.deepEqual(await kinds(['labels."containerd.io/gc.root"']), ['a']);
    assert.deepEqual(await kinds(['labels.kind~=^[ab]$']), ['a', 'b']);
    assert.deepEqual(await kinds(['labels.kind==a', 'labels.kind==b']), ['a', 'b']);
    assert.deepEqual(await kinds(['labels.kind!=a']), ['b']);
  });

  test('ListStatuses filters on ref', async () => {
    const res = await new Promise<{ statuses: Array<{ ref: string }> }>((resolve, reject) =>
      client.listStatuses({ filters: ['ref~=^pending-'] }, ns, (err, r) => (err ? reject(err) : resolve(r))),
    );
    assert.deepEqual(
      res.statuses.map((s) => s.ref),
      ['pending-1'],
    );
  });

  test('a malformed filter is INVALID_ARGUMENT with its position, on List and ListStatuses', async () => {
    await assert.rejects(list(client, ['labels.containerd.io/gc.root'], ns), (err: ServiceError) => {
      assert.equal(err.code, grpcStatus.INVALID_ARGUMENT);
      assert.match(err.details, /\[labels\.containerd\.io >\|\/\|< gc\.root\]: quoted literal not terminated \(position 20\)/);
      return true;
    });
    await assert.rejects(
      new Promise((resolve, reject) => client.listStatuses({ filters: ['ref=='] }, ns, (err, r) => (err ? reject(err) : resolve(r)))),
      (err: ServiceError) => {
        assert.equal(err.code, grpcStatus.INVALID_ARGUMENT);
        assert.match(err.details, /expected value or quoted \(position 5\)/);
        return true;
      },
    );
  });
});
