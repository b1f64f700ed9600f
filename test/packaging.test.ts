// `npm pack` yields a package that installs from its tarball alone and
// whose `contentd` bin serves: the path an operator follows.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { contentClient, md, sha256, writeBlob } from './support/client';

const run = promisify(execFile);
const REPO = resolve(__dirname, '..', '..');
const CI = process.env.CI === 'true';
/** npm's own failures when it cannot reach the registry. */
const NETWORK = /ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|ECONNRESET|network/i;

async function npm(args: string[], cwd: string): Promise<{ ok: boolean; stdout: string; output: string }> {
  try {
    const { stdout, stderr } = await run('npm', args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false' } });
    return { ok: true, stdout, output: stdout + stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: err.stdout ?? '', output: `${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

describe('npm package', { timeout: 15 * 60_000 }, () => {
  let dir: string;
  let tarball: string;
  let bin: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'contentd-pack-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('npm pack includes the built CLI, the example config and the systemd unit, and no tests', async () => {
    // dist/ is built by `npm test`; --ignore-scripts keeps pack from rebuilding it.
    const packed = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], REPO);
    assert.ok(packed.ok, packed.output);
    const [manifest] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(dir, manifest!.filename);
    const files = manifest!.files.map((f) => f.path);
    for (const required of ['package.json', 'dist/src/cli/main.js', 'config.example.toml', 'contrib/systemd/contentd.service']) {
      assert.ok(files.includes(required), `${required} missing from the package`);
    }
    assert.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.endsWith('.ts')), []);
  });

  test('installs from the tarball, and the contentd bin runs and serves', async (t) => {
    assert.ok(tarball, 'npm pack ran');
    const project = join(dir, 'install');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'contentd-install-test', private: true }));
    // Offline from npm's cache when it holds every dependency, else from the registry.
    let installed = await npm(['install', '--offline', '--no-audit', '--no-fund', tarball], project);
    t.diagnostic(installed.ok ? 'installed offline, from the npm cache' : 'not all in the npm cache: installing with the registry');
    if (!installed.ok) installed = await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project);
    if (!installed.ok && NETWORK.test(installed.output) && !CI) {
      t.skip(`the npm registry is unreachable: ${installed.output.split('\n')[0]}`);
      return;
    }
    assert.ok(installed.ok, installed.output);
    bin = join(project, 'node_modules', '.bin', 'contentd');
    assert.ok(existsSync(bin));

    const help = await run('npx', ['--no-install', 'contentd', '--help'], { cwd: project });
    for (const command of ['serve', 'health', 'ls', 'du', 'info']) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));

    // Serve with the packaged example config (production values) redirected to a temp root and socket.
    const root = join(dir, 'root');
    const socket = join(dir, 'contentd.sock');
    const example = join(project, 'node_modules', 'contentd', 'config.example.toml');
    const server = spawn(bin, ['--config', example, '--root', root, 'serve', '--address', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    server.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = once(server, 'exit');
    t.after(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    const health = await run(bin, ['health', '--address', socket, '--wait', '60']).catch((e: { stdout: string }) => e);
    assert.equal(health.stdout.trim(), 'SERVING', log);

    const client = contentClient(socket);
    const data = randomBytes(4096);
    await writeBlob(client, 'packaged', data, { metadata: md('default') });
    client.close();
    const ls = await run(bin, ['--root', root, 'ls', '-q']);
    assert.equal(ls.stdout.trim(), sha256(data));
    assert.ok((await readdir(join(root, 'blobs', 'sha256'))).includes(sha256(data).slice('sha256:'.length)));

    server.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, log);
    assert.match(log, /stopped/);
  });
});
