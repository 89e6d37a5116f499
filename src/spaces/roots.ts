import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Core } from '../jobs/core.ts';
import { resolveDatabaseUrl, type Db } from '../db/index.ts';
import { lockLocalRoots } from '../db/locks.ts';
import { badRequest } from '../lib/errors.ts';
import type { StorageConfig } from './models.ts';

/**
 * Where tenants' own `local` directories (a user space's root, a sync source's path) may be. Tenant
 * owners are untrusted, so such a directory must lie inside a directory the operator allowed
 * (YUNJI_LOCAL_ROOTS; none when it is empty), may not overlap Yunji's own storage (the data dir,
 * which holds every tenant's default space, present or future, and the key; the database file),
 * and may not overlap another tenant's local space or source (docs/SECURITY.md, section 1).
 */
export function allowedRoots(core: Core): string[] {
  return core.config.localRoots
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => resolve(r));
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

/** Yunji's own files: the data dir, and the SQLite database (with its journal files) wherever it is. */
function ownStorage(core: Core): string[] {
  const database = resolveDatabaseUrl(core.config.databaseUrl, core.config.dataDir);
  const files = database.dialect === 'sqlite' ? [database.target, `${database.target}-wal`, `${database.target}-shm`] : [];
  return [core.config.dataDir, ...files];
}

/**
 * The real directory (symlinks resolved as far as it exists) for a tenant's local `root`, or a 400
 * naming what is wrong: not absolute, not allowed, or overlapping Yunji's own storage. Other
 * tenants' directories are checked where the root is stored (`claimLocalRoot`).
 */
export async function checkLocalRoot(core: Core, root: string, field = 'storage.root'): Promise<string> {
  if (!isAbsolute(root)) throw badRequest(`${field} must be an absolute path`, field);
  if (root.includes('\0')) throw badRequest(`${field} contains a NUL character`, field);
  const listed = allowedRoots(core);
  if (listed.length === 0) {
    throw badRequest(
      `${field}: this server lets tenants use no local directory; the operator must list the directories they may use in YUNJI_LOCAL_ROOTS`,
      field,
    );
  }
  const real = await resolved(resolve(root));
  const allowed = await Promise.all(listed.map(resolved));
  if (!allowed.some((dir) => within(real, dir))) {
    throw badRequest(
      `${field} must be inside ${allowed.length === 1 ? allowed[0] : `one of ${allowed.join(', ')}`} (YUNJI_LOCAL_ROOTS)`,
      field,
    );
  }
  const own = await Promise.all(ownStorage(core).map(resolved));
  if (own.some((p) => overlap(real, p))) {
    throw badRequest(
      `${field} may not overlap Yunji's own storage (its data dir, which holds every tenant's default space, or its database)`,
      field,
    );
  }
  return real;
}

/**
 * The local directories other tenants use: their local spaces' roots and local sources' paths. Both
 * are stored resolved (by checkLocalRoot), so they compare as written; default spaces are inside
 * the data dir, which no tenant-made root may overlap, so they need no row of their own.
 */
async function foreignRoots(db: Db, tenantId: number): Promise<string[]> {
  const [spaces, sources] = await Promise.all([
    db.selectFrom('user_spaces').select('storage_json').where('tenant_id', '!=', tenantId).where('is_default', '=', 0).execute(),
    db.selectFrom('sync_sources').select('config_json').where('tenant_id', '!=', tenantId).where('type', '=', 'local').execute(),
  ]);
  return [
    ...spaces.map((r) => JSON.parse(r.storage_json) as StorageConfig).flatMap((s) => (s.type === 'local' ? [s.root] : [])),
    ...sources.map((r) => (JSON.parse(r.config_json) as { path: string }).path),
  ];
}

/** Throws a 400 if `real` (from checkLocalRoot) overlaps a local directory of another tenant. */
export async function assertNotForeign(db: Db, tenantId: number, real: string, field = 'storage.root'): Promise<void> {
  if ((await foreignRoots(db, tenantId)).some((other) => overlap(real, other)))
    throw badRequest(`${field} overlaps a local directory another tenant uses`, field);
}

/**
 * Inside the transaction that stores a tenant's local root: waits for any other tenant's claim to
 * commit, then checks `real` against every root stored, so two tenants cannot both claim
 * overlapping directories at the same moment.
 */
export async function claimLocalRoot(trx: Db, core: Core, tenantId: number, real: string, field = 'storage.root'): Promise<void> {
  await lockLocalRoots(trx, core.dialect);
  await assertNotForeign(trx, tenantId, real, field);
}
