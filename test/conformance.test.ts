// Runs containerd's content store conformance suite (content/testsuite, Go)
// against real contentd servers. The Go harness lives in test/conformance;
// it is built once in GOPATH mode against Debian's containerd 1.6 sources
// (golang-go + golang-github-containerd-containerd-dev).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  buildConformanceHarness,
  conformanceMissing,
  conformanceProblems,
  CONTENT_SUITE,
  CROSS_NS_ISOLATED,
  CROSS_NS_SHARED,
  LEASES_SUITE,
  runConformance,
} from './support/conformance';
import { startCeph, type CephCluster } from './support/ceph';
import { listKeys, newBucket, s3Client, s3ServerConfig, s3Skip } from './support/s3';

const mainJs = path.resolve(__dirname, '..', 'src', 'cli', 'main.js');

const MODE_TIMEOUT_MS = 10 * 60 * 1000;

const missing = conformanceMissing();
if (missing && process.env.CI === 'true') {
  throw new Error(`conformance: ${missing} (required when CI=true)`);
}
const skip = missing ? `conformance suite skipped: ${missing}` : false;

let workDir = '';
let testBinary = '';

/** A contentd server started for one mode. */
class Server {
  readonly socket: string;
  private readonly child: ChildProcess;
  private output = '';
  private exit: Promise<void>;
  private exited = false;

  constructor(readonly root: string, configFile?: string) {
    this.socket = path.join(root, 'contentd.sock');
    const args = [mainJs, 'serve', '--address', this.socket, '--root', path.join(root, 'data')];
    if (configFile) args.push('--config', configFile);
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: string) => {
      this.output = (this.output + d).slice(-16384);
    };
    this.child.stdout!.setEncoding('utf8').on('data', keep);
    this.child.stderr!.setEncoding('utf8').on('data', keep);
    this.exit = new Promise((resolve) => {
      this.child.on('exit', () => {
        this.exited = true;
        resolve();
      });
      this.child.on('error', (err) => {
        keep(`spawn error: ${err.message}\n`);
        this.exited = true;
        resolve();
      });
    });
  }

  get log(): string {
    return this.output;
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.socket)) {
      if (this.exited) throw new Error(`server exited before creating ${this.socket}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`server did not create ${this.socket} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exit;
    clearTimeout(timer);
  }
}

interface ModeSpec {
  mode: 'global' | 'namespaced' | 'isolated';
  expected: string[];
  /** Go starts a fresh server per test (CONTENTD_SERVER_CMD) instead of sharing one. */
  serverPerTest: boolean;
  config?: string;
}

async function runMode(spec: ModeSpec): Promise<void> {
  const dir = mkdtempSync(path.join(workDir, `${spec.mode}-`));
  let configFile: string | undefined;
  if (spec.config !== undefined) {
    configFile = path.join(dir, 'config.toml');
    writeFileSync(configFile, spec.config);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, CONTENTD_MODE: spec.mode };
  delete env.CONTENTD_ADDRESS;
  delete env.CONTENTD_SERVER_CMD;
  delete env.CONTENTD_SERVER_CONFIG;

  let server: Server | undefined;
  try {
    if (spec.serverPerTest) {
      env.CONTENTD_SERVER_CMD = JSON.stringify([process.execPath, mainJs, 'serve']);
      if (configFile) env.CONTENTD_SERVER_CONFIG = configFile;
    } else {
      const root = path.join(dir, 'server');
      mkdirSync(root);
      server = new Server(root, configFile);
      await server.ready();
      env.CONTENTD_ADDRESS = server.socket;
    }

    const res = await runConformance(testBinary, { cwd: dir, env, timeoutMs: MODE_TIMEOUT_MS - 2 * 60_000 });
    const problems = conformanceProblems(`mode ${spec.mode}`, res, spec.expected);
    if (problems) {
      const serverLog = server ? `\n--- shared server output (tail) ---\n${server.log.slice(-4000)}` : '';
      assert.fail(`${problems}${serverLog}`);
    }
  } finally {
    await server?.stop();
  }
}

describe('containerd content conformance (content/testsuite)', { skip, timeout: 3 * MODE_TIMEOUT_MS + 5 * 60_000 }, () => {
  before(async () => {
    assert.ok(existsSync(mainJs), `${mainJs} not found: run npm run build`);
    workDir = mkdtempSync(path.join(tmpdir(), 'contentd-conf-'));
    testBinary = path.join(workDir, 'conformance.test');
    await buildConformanceHarness(testBinary);
  });

  after(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  test('global namespace: ContentSuite (fresh server per test)', { timeout: MODE_TIMEOUT_MS }, async () => {
    await runMode({ mode: 'global', expected: CONTENT_SUITE, serverPerTest: true });
  });

  test('namespaced (shared policy): ContentSuite + ContentCrossNSSharedSuite', { timeout: MODE_TIMEOUT_MS }, async () => {
    await runMode({ mode: 'namespaced', expected: [...CONTENT_SUITE, ...CROSS_NS_SHARED], serverPerTest: false });
  });

  test('isolated policy: ContentCrossNSIsolatedSuite', { timeout: MODE_TIMEOUT_MS }, async () => {
    await runMode({
      mode: 'isolated',
      expected: CROSS_NS_ISOLATED,
      serverPerTest: false,
      config: '[namespaces]\npolicy = "isolated"\n',
    });
  });

  test('leases: containerd\'s leases/proxy and content clients against the Leases service (TestLeases)', { timeout: MODE_TIMEOUT_MS }, async () => {
    const dir = mkdtempSync(path.join(workDir, 'leases-'));
    const env: NodeJS.ProcessEnv = { ...process.env, CONTENTD_SERVER_CMD: JSON.stringify([process.execPath, mainJs, 'serve']) };
    delete env.CONTENTD_MODE;
    delete env.CONTENTD_ADDRESS;
    delete env.CONTENTD_SERVER_CONFIG;
    const res = await runConformance(testBinary, { cwd: dir, env, timeoutMs: MODE_TIMEOUT_MS - 2 * 60_000, test: 'TestLeases' });
    const problems = conformanceProblems('TestLeases', res, LEASES_SUITE);
    if (problems) assert.fail(problems);
  });
});

describe('containerd content conformance with blobs in S3 (Ceph RGW)', { skip: skip || s3Skip(), timeout: 2 * MODE_TIMEOUT_MS + 5 * 60_000 }, () => {
  let ceph: CephCluster | undefined;
  let bucket = '';
  // Each mode's servers get a prefix of their own: a server deletes the objects under its prefix that its metadata does not know.
  const config = (prefix: string): string => s3ServerConfig(ceph!, { bucket, prefix });

  before(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'contentd-conf-s3-'));
    testBinary = path.join(workDir, 'conformance.test');
    await buildConformanceHarness(testBinary);
    ceph = await startCeph();
    const client = s3Client(ceph);
    bucket = await newBucket(client);
    client.destroy();
  });

  /** Proof that a mode's servers kept their blobs in the bucket, not on local disk. */
  const assertObjectsUnder = async (prefix: string): Promise<void> => {
    const client = s3Client(ceph!);
    try {
      assert.ok((await listKeys(client, bucket, `${prefix}blobs/sha256/`)).size > 0, `no objects under ${prefix}blobs/`);
    } finally {
      client.destroy();
    }
  };

  after(async () => {
    await ceph?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  test('global namespace: ContentSuite (fresh server per test)', { timeout: MODE_TIMEOUT_MS }, async () => {
    await runMode({ mode: 'global', expected: CONTENT_SUITE, serverPerTest: true, config: config('global/') });
    await assertObjectsUnder('global/');
  });

  test('namespaced (shared policy): ContentSuite + ContentCrossNSSharedSuite', { timeout: MODE_TIMEOUT_MS }, async () => {
    await runMode({ mode: 'namespaced', expected: [...CONTENT_SUITE, ...CROSS_NS_SHARED], serverPerTest: false, config: config('namespaced/') });
    await assertObjectsUnder('namespaced/');
  });
});
