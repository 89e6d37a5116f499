import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Core } from '../core.ts';
import { resolveDatabaseUrl } from '../db/index.ts';
import { badRequest } from '../errors.ts';

/**
 * Where `local` spaces may live. An operator allows directories (YUNJI_LOCAL_ROOTS, default the
 * data dir); inside them a space's root may not hold Yunji's own files (the database, the key,
 * the default spaces) nor overlap another tenant's local space, so one tenant can never read
 * another's bytes through a space of its own.
 */
export function allowedRoots(core: Core): string[] {
  const listed = core.config.localRoots
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  return (listed.length > 0 ? listed : [core.config.dataDir]).map((r) => resolve(r));
}

/** The path with symlinks resolved as far as it exists (the rest appended as written). */
async function resolved(path: string): Promise<string> {
  let existing = path;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(existing), ...rest.reverse());
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return path;
      rest.push(basename(existing));
      existing = parent;
    }
  }
}

const within = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
const overlap = (a: string, b: string) => within(a, b) || within(b, a);

/** The real directory for a local space's `root`, or a 400 naming what is wrong. */
export async function checkLocalRoot(core: Core, root: string, otherTenantRoots: string[], field = 'storage.root'): Promise<string> {
  if (!isAbsolute(root)) throw badRequest(`${field} must be an absolute path`, field);
  if (root.includes('\0')) throw badRequest(`${field} contains a NUL character`, field);
  const real = await resolved(resolve(root));
  const allowed = await Promise.all(allowedRoots(core).map(resolved));
  if (!allowed.some((dir) => within(real, dir))) {
    throw badRequest(`${field} must be inside ${allowed.length === 1 ? allowed[0] : `one of ${allowed.join(', ')}`} (YUNJI_LOCAL_ROOTS)`, field);
  }
  const database = resolveDatabaseUrl(core.config.databaseUrl, core.config.dataDir);
  const ownFiles = [core.config.dataDir, join(core.config.dataDir, 'spaces'), ...(database.dialect === 'sqlite' ? [database.target] : [])];
  const own = await Promise.all(ownFiles.map(resolved));
  if (own.some((p) => within(p, real))) throw badRequest(`${field} may not contain Yunji's own files (its data dir, database or default spaces)`, field);
  for (const other of otherTenantRoots) {
    if (overlap(real, await resolved(other))) throw badRequest(`${field} overlaps a directory another tenant's space uses`, field);
  }
  return real;
}
