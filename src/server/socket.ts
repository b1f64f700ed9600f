import { connect } from 'node:net';
import { chmod, chown, lstat, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** True when something accepts connections on the unix socket at path. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Removes a socket file left by a process that died, refusing to steal a live one. */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket`);
  if (await isListening(path)) throw new Error(`another server is already listening on ${path}`);
  await rm(path, { force: true });
}

export async function setSocketAccess(path: string, mode: number, uid?: number, gid?: number): Promise<void> {
  if (uid !== undefined || gid !== undefined) await chown(path, uid ?? -1, gid ?? -1);
  await chmod(path, mode);
}
