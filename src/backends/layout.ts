import { BackendError } from './backendError.ts';
import { joinKey } from './backend.ts';

/**
 * Where Yunji keeps its own data inside a space: `<workingDir>/.yunji/`. Listings of the space
 * (package import, sync) never descend into a folder of this name, so it cannot be read or
 * overwritten through them.
 */
export const RESERVED_DIR = '.yunji';

export const shardKey = (workingDir: string, hash: string) => joinKey(workingDir, RESERVED_DIR, 'shards', hash.slice(0, 2), hash);
export const shardsPrefix = (workingDir: string) => joinKey(workingDir, RESERVED_DIR, 'shards');
export const tmpPrefix = (workingDir: string) => joinKey(workingDir, RESERVED_DIR, 'tmp');

/** True when a user-given path inside the space names or enters a reserved folder. */
export function touchesReserved(path: string): boolean {
  return path.split('/').includes(RESERVED_DIR);
}

/**
 * Throws unless `key` stays out of every reserved folder: every write, removal or new folder a
 * client directs into a space (a package export, a sync's destination) passes this, so stored
 * bytes cannot be replaced under the hashes that vouch for them. The failure is the file's own.
 */
export function assertOutsideReserved(key: string): void {
  if (touchesReserved(key))
    throw new BackendError(
      `'${key}' is inside a '${RESERVED_DIR}' folder, where Yunji keeps its own data: it is not written there`,
      'denied',
    );
}
