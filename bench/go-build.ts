import { mkdir, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { conformanceMissing, goEnv } from '../test/support/conformance';
import { runOk } from '../test/support/process';

/** The benchmark's Go programs: each a GOPATH under bench/ with one package, built against Debian's containerd sources. */
export type GoTool = 'refserver' | 'benchclient';

const GOPATHS: Record<GoTool, { dir: string; pkg: string }> = {
  refserver: { dir: 'refserver', pkg: 'contentd.local/refserver' },
  benchclient: { dir: 'goclient', pkg: 'contentd.local/benchclient' },
};

const builds = new Map<GoTool, Promise<string>>();

/** Builds tool once per bench process; resolves to the binary (in its GOPATH's bin/, gitignored). */
export function buildGoTool(tool: GoTool): Promise<string> {
  let build = builds.get(tool);
  if (!build) {
    build = (async () => {
      // The same toolchain and Debian sources as the conformance harness.
      const missing = conformanceMissing();
      if (missing) throw new Error(`bench/${GOPATHS[tool].dir} cannot be built: ${missing}`);
      const gopath = resolve(__dirname, '..', '..', 'bench', GOPATHS[tool].dir);
      const binary = join(gopath, 'bin', tool);
      await mkdir(join(gopath, 'bin'), { recursive: true });
      // Built beside it, then renamed: another bench still running the old binary keeps it.
      const building = `${binary}.${process.pid}`;
      await runOk('go', ['build', '-o', building, GOPATHS[tool].pkg], { cwd: gopath, env: goEnv(gopath), timeoutMs: 5 * 60_000 });
      await rename(building, binary);
      return binary;
    })();
    builds.set(tool, build);
  }
  return build;
}
