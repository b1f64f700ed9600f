// containerd's content store test suite (content/testsuite, Go), built in
// GOPATH mode from test/conformance against Debian's containerd 1.6 sources
// (golang-go + golang-github-containerd-containerd-dev), run as a binary
// and its `go test -v` output turned into per-subtest outcomes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { run } from './process';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const goPathDir = path.join(repoRoot, 'test', 'conformance');
const goPackage = 'contentd.local/conformance';
const systemGoPath = process.env.CONTENTD_SYSTEM_GOPATH ?? '/usr/share/gocode';
const testsuiteDir = path.join(systemGoPath, 'src/github.com/containerd/containerd/content/testsuite');

export const CONTENT_SUITE = [
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
export const CROSS_NS_SHARED = ['CrossNamespaceAppend', 'CrossNamespaceShare'];
export const CROSS_NS_ISOLATED = ['CrossNamespaceIsolate'];
/** Subtests of TestLeases (leases_test.go): containerd's lease client against the Leases service. */
export const LEASES_SUITE = [
  'CreateListDelete',
  'Filters',
  'Resources',
  'WriteUnderLease',
  'SyncDeleteCollects',
  'ExpiredLeaseReleases',
  'UnknownLeaseIsImplicit',
];

/** Why the harness cannot be built here, or undefined when it can. */
export function conformanceMissing(): string | undefined {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    return `go is not available (${go.error?.message ?? go.stderr.trim()}); install golang-go`;
  }
  if (!existsSync(testsuiteDir)) {
    return `${testsuiteDir} not found; install golang-github-containerd-containerd-dev`;
  }
  return undefined;
}

/** Environment for the go tool in GOPATH mode: gopathDir (holding src/) first, then Debian's Go sources. */
export function goEnv(gopathDir: string): NodeJS.ProcessEnv {
  const gopath = [gopathDir, systemGoPath, ...(process.env.GOPATH ? [process.env.GOPATH] : [])];
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOFLAGS: '',
    GOPATH: [...new Set(gopath)].join(path.delimiter),
    GOCACHE: process.env.GOCACHE ?? path.join(repoRoot, '.go-cache'),
  };
}

/** Compiles the harness (go test -c) to binary; rejects with the compiler's output. */
export async function buildConformanceHarness(binary: string): Promise<void> {
  const res = await run('go', ['test', '-c', '-o', binary, goPackage], { cwd: goPathDir, env: goEnv(goPathDir), timeoutMs: 5 * 60_000 });
  if (res.code !== 0) throw new Error(`building the Go conformance harness failed:\n${res.stdout}${res.stderr}`);
}

type Outcome = 'PASS' | 'FAIL' | 'SKIP';

export interface ConformanceRun {
  /** Outcome per subtest of the test run (TestContent by default), by name without the parent prefix. */
  results: Map<string, Outcome>;
  /** Output lines per subtest. */
  sections: Map<string, string[]>;
  output: string;
  exit: number | string;
}

/**
 * Runs TestContent (or options.test, e.g. TestLeases) of a built harness. env
 * carries CONTENTD_MODE and CONTENTD_ADDRESS or CONTENTD_SERVER_CMD (see
 * conformance_test.go).
 */
export async function runConformance(binary: string, options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; test?: string }): Promise<ConformanceRun> {
  const test = options.test ?? 'TestContent';
  const res = await run(binary, ['-test.v', '-test.count=1', `-test.timeout=${Math.floor(options.timeoutMs / 1000)}s`, `-test.run=^${test}$`], {
    cwd: options.cwd,
    env: options.env,
    timeoutMs: options.timeoutMs + 30_000,
  });
  const output = res.stdout + res.stderr;
  return { ...parseGoTest(output, test), output, exit: res.code ?? res.signal ?? 'unknown' };
}

/** What went wrong with a run that should have passed exactly the expected subtests, or undefined if nothing did. */
export function conformanceProblems(name: string, run: ConformanceRun, expected: string[]): string | undefined {
  const problems: string[] = [];
  for (const test of expected) {
    const outcome = run.results.get(test);
    if (outcome !== 'PASS') problems.push(`${test}: ${outcome ?? 'did not run'}`);
  }
  const unexpected = [...run.results.keys()].filter((n) => !expected.includes(n) && !n.includes('/'));
  if (problems.length === 0 && unexpected.length === 0 && run.exit === 0) return undefined;
  const details = expected
    .filter((n) => run.results.get(n) !== 'PASS' && run.sections.has(n))
    .map((n) => run.sections.get(n)!.join('\n'))
    .join('\n');
  const summary = [
    `${name}: ${problems.length} of ${expected.length} subtests did not pass`,
    ...problems.map((p) => `  ${p}`),
    ...(unexpected.length ? [`  unexpected subtests: ${unexpected.join(', ')}`] : []),
    `  go test exit: ${run.exit}`,
  ].join('\n');
  return `${summary}\n--- go test output ---\n${(details || run.output.slice(-8000)).slice(-30000)}`;
}

/** Parses `go test -v` output into subtest outcomes and per-subtest output sections. */
function parseGoTest(output: string, parent: string): Pick<ConformanceRun, 'results' | 'sections'> {
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
