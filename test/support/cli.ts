import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI } from './server';

const run = promisify(execFile);

/** Runs the contentd CLI; resolves with its exit code and output, also when it fails. */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
