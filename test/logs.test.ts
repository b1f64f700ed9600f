// Request logs (request id, method, namespace, gRPC code, duration) in both
// formats, log levels by outcome, and SIGHUP reloading the log level.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { contentClient, info, md, sha256, writeBlob } from './support/client';
import { startTestServer } from './support/server';

const ABSENT = sha256(Buffer.from('logs'));

async function waitFor(output: () => string, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (pattern.test(output())) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`no ${pattern} in:\n${output()}`);
}

describe('request logs', () => {
  test('json: one line per finished request with request id, method, namespace, code and duration', async (t) => {
    const server = await startTestServer({ args: ['--log-format', 'json', '--log-level', 'debug'] });
    t.after(() => server.destroy());
    const client = contentClient(server.address);
    t.after(() => client.close());
    await writeBlob(client, 'logs-1', Buffer.from('hello'), { metadata: md('logs') });
    await assert.rejects(info(client, ABSENT, md('logs')));
    await waitFor(server.output, /"code":"NOT_FOUND"/);

    const lines = server.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => 'requestId' in l);
    assert.deepEqual(
      requests.map((l) => [l.method, l.code, l.namespace, l.level]),
      [
        ['Content/Write', 'OK', 'logs', 'debug'],
        ['Content/Info', 'NOT_FOUND', 'logs', 'debug'],
      ],
    );
    for (const l of requests) {
      assert.match(String(l.requestId), /^[0-9a-f]{12}$/);
      assert.equal(typeof l.durationMs, 'number');
      assert.match(String(l.timestamp), /^\d{4}-\d\d-\d\dT/);
    }
    assert.notEqual(requests[0]!.requestId, requests[1]!.requestId);
    assert.match(String(requests[1]!.message), /not found/);
  });

  test('text: key=value fields; at the default level only outcomes that need attention', async (t) => {
    const server = await startTestServer({ config: '[limits]\nmax_blob_size = 4\n' });
    t.after(() => server.destroy());
    const client = contentClient(server.address);
    t.after(() => client.close());
    await writeBlob(client, 'small', Buffer.from('abc'));
    await assert.rejects(info(client, ABSENT));
    await assert.rejects(writeBlob(client, 'big', Buffer.from('too big'), { metadata: md('logs') }));
    await waitFor(server.output, /RESOURCE_EXHAUSTED/);
    const line = server.output().split('\n').find((l) => l.includes('RESOURCE_EXHAUSTED'))!;
    assert.match(line, /^\S+Z warn blob size \d+ exceeds the configured maximum of 4 bytes requestId=[0-9a-f]{12} method=Content\/Write code=RESOURCE_EXHAUSTED durationMs=[\d.]+ namespace=logs$/);
    // Routine outcomes (OK, NOT_FOUND) are debug lines, not written at info.
    assert.doesNotMatch(server.output(), /code=OK|code=NOT_FOUND/);
  });
});

describe('SIGHUP', () => {
  test('re-reads the config file: applies log.level, names the settings that need a restart', async (t) => {
    const server = await startTestServer({ config: '[log]\nlevel = "info"\n' });
    t.after(() => server.destroy());
    const client = contentClient(server.address);
    t.after(() => client.close());
    await assert.rejects(info(client, ABSENT));

    await writeFile(join(server.root, 'config.toml'), '[log]\nlevel = "debug"\n[grpc]\nsocket_mode = "0600"\n');
    server.process.kill('SIGHUP');
    await waitFor(server.output, /changed settings take effect only after a restart settings=grpc\.socket_mode/);
    assert.match(server.output(), /info configuration reloaded logLevel=debug/);
    await assert.rejects(info(client, ABSENT));
    await waitFor(server.output, /code=NOT_FOUND/);
    assert.equal(server.output().match(/code=NOT_FOUND/g)!.length, 1, 'only the request after the reload is logged');

    // A broken file changes nothing and the server keeps running.
    await writeFile(join(server.root, 'config.toml'), '[log]\nlevel = "loud"\n');
    server.process.kill('SIGHUP');
    await waitFor(server.output, /configuration reload failed; nothing changed error=log\.level must be one of/);
    await assert.rejects(info(client, ABSENT));
    await waitFor(server.output, /code=NOT_FOUND[^\n]*\n[^]*code=NOT_FOUND/);
    assert.equal(server.process.exitCode, null);
  });
});
