// Steps shared by the end-to-end tests of containerd on contentd, whatever
// backend holds the blobs: the conformance harness built in the background,
// an export checked byte for byte, and containerd's content test suite run
// through containerd.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildConformanceHarness, conformanceProblems, CONTENT_SUITE, CROSS_NS_SHARED, runConformance } from './conformance';
import type { Containerd } from './containerd';
import { readTar } from './oci-image';

/** Starts building the Go conformance harness into dir (the slowest step, left to run while other tests do); resolves to the binary. */
export function buildHarnessInBackground(dir: string): Promise<string> {
  const binary = join(dir, 'conformance.test');
  const harness = buildConformanceHarness(binary).then(() => binary);
  harness.catch(() => undefined);
  return harness;
}

/** `ctr images export` of ref into archive; asserts it holds every blob (digest → file with its bytes), byte for byte. */
export async function assertExportHolds(containerd: Containerd, ref: string, namespace: string, archive: string, blobs: Map<string, string>): Promise<void> {
  await containerd.ctrOk(['images', 'export', archive, ref], { namespace });
  const files = await readTar(archive);
  for (const [digest, file] of blobs) {
    const blob = files.get(`blobs/sha256/${digest.slice('sha256:'.length)}`);
    assert.ok(blob, `${digest} missing from the export`);
    assert.ok(blob.equals(await readFile(file)), `${digest}: exported bytes differ`);
  }
}

/** Runs containerd's content suite and cross-namespace shared suite through containerd (mode containerd); logs() explains a failure. */
export async function assertContentSuiteThroughContainerd(binary: string, containerd: Containerd, cwd: string, logs: () => string): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTENTD_MODE: 'containerd', CONTENTD_ADDRESS: containerd.address };
  delete env.CONTENTD_SERVER_CMD;
  const res = await runConformance(binary, { cwd, env, timeoutMs: 5 * 60_000 });
  const problems = conformanceProblems('mode containerd', res, [...CONTENT_SUITE, ...CROSS_NS_SHARED]);
  assert.equal(problems, undefined, `${problems}\n${logs()}`);
}
