// Runs containerd's content store conformance suite (content/testsuite, Go)
// against real contentd servers. The Go harness lives in test/conformance;
// it is built once in GOPATH mode against Debian's containerd 1.6 sources
// (golang-go + golang-github-containerd-containerd-dev).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const repoRoot = path.resolve(__dirname, '..', '..');
const mainJs = path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
const goPathDir = path.join(repoRoot, 'test', 'conformance');
const goPackage = 'contentd.local/conformance';
const systemGoPath = process.env.CONTENTD_SYSTEM_GOPATH ?? '/usr/share/gocode';
const testsuiteDir = path.join(systemGoPath, 'src/github.com/containerd/containerd/content/testsuite');

const CONTENT_SUITE = [
  'Writer',
  'UpdateStatus',
  'CommitExists',
  'Resume',
  'ResumeTruncate',
  'ResumeDiscard',
  'ResumeCopy',
  'ResumeCopySeeker',
  'ResumeCopyReaderAt',
  'SmallBlob',
  'Labels',
  'CommitErrorState',
];
const CROSS_NS_SHARED = ['CrossNamespaceAppend', 'CrossNamespaceShare'];
const CROSS_NS_ISOLATED = ['CrossNamespaceIsolate'];

const MODE_TIMEOUT_MS = 10 * 60 * 1000;

function missingPrerequisite(): string | undefined {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    return `go is not available (${go.error?.message ?? go.stderr.trim()}); install golang-go`;
  }
  if (!existsSync(testsuiteDir)) {
    return `${testsuiteDir} not found; install golang-github-containerd-containerd-dev`;
  }
  return undefined;
}

const missing = missingPrerequisite();
if (missing && process.env.CI === 'true') {
  throw new Error(`conformance: ${missing} (required when CI=true)`);
}
const skip = missing ? `conformance suite skipped: ${missing}` : false;

let workDir = '';
let testBinary = '';

function goEnv(): NodeJS.ProcessEnv {
  const gopath = [goPathDir, systemGoPath, ...(process.env.GOPATH ? [process.env.GOPATH] : [])];
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOFLAGS: '',
    GOPATH: [...new Set(gopath)].join(path.delimiter),
    GOCACHE: process.env.GOCACHE ?? path.join(repoRoot, '.go-cache'),
  };
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

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

type Outcome = 'PASS' | 'FAIL' | 'SKIP';

/** Parses `go test -v` output into subtest outcomes and per-subtest output sections. */
function parseGoTest(output: string, parent: string) {
  const results = new Map<string, Outcome>();
  const sections = new Map<string, string[]>();
  let current: string | undefined;
  const prefix = `${parent}/`;
  for (const line of output.split('\n')) {
    const runMatch = /^=== (?:RUN|CONT|PAUSE)\s+(\S+)/.exec(line);
    if (runMatch) {
      current = runMatch[1]!.startsWith(prefix) ? runMatch[1]!.slice(prefix.length) : undefined;
    }
    const doneMatch = /^\s*--- (PASS|FAIL|SKIP): (\S+)/.exec(line);
    if (doneMatch && doneMatch[2]!.startsWith(prefix)) {
      results.set(doneMatch[2]!.slice(prefix.length), doneMatch[1] as Outcome);
    }
    if (current !== undefined) {
      const lines = sections.get(current) ?? [];
      lines.push(line);
      sections.set(current, lines);
    }
  }
  return { results, sections };
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

    const res = await run(testBinary, ['-test.v', '-test.count=1', '-test.timeout=8m', '-test.run=^TestContent$'], {
      cwd: dir,
      env,
      timeoutMs: MODE_TIMEOUT_MS - 30_000,
    });
    const output = res.stdout + res.stderr;
    const { results, sections } = parseGoTest(output, 'TestContent');

    const problems: string[] = [];
    for (const name of spec.expected) {
      const outcome = results.get(name);
      if (outcome !== 'PASS') problems.push(`${name}: ${outcome ?? 'did not run'}`);
    }
    const unexpected = [...results.keys()].filter((n) => !spec.expected.includes(n) && !n.includes('/'));
    if (problems.length > 0 || unexpected.length > 0 || res.code !== 0) {
      const details = spec.expected
        .filter((n) => results.get(n) !== 'PASS' && sections.has(n))
        .map((n) => sections.get(n)!.join('\n'))
        .join('\n');
      const summary = [
        `mode ${spec.mode}: ${problems.length} of ${spec.expected.length} subtests did not pass`,
        ...problems.map((p) => `  ${p}`),
        ...(unexpected.length ? [`  unexpected subtests: ${unexpected.join(', ')}`] : []),
        `  go test exit: ${res.code ?? res.signal}`,
      ].join('\n');
      const tail = details || output.slice(-8000);
      const serverLog = server ? `\n--- shared server output (tail) ---\n${server.log.slice(-4000)}` : '';
      assert.fail(`${summary}\n--- go test output ---\n${tail.slice(-30000)}${serverLog}`);
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
    const res = await run('go', ['test', '-c', '-o', testBinary, goPackage], {
      cwd: goPathDir,
      env: goEnv(),
      timeoutMs: 5 * 60_000,
    });
    assert.equal(res.code, 0, `building the Go conformance harness failed:\n${res.stdout}${res.stderr}`);
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
});
