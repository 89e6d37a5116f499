import { join } from 'node:path';
import type { Core } from '../core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { notFound } from '../errors.ts';
import { LocalShardStore } from './shardStore.ts';

/**
 * User spaces: where a tenant's bytes live. Every tenant has a default local space under the data
 * dir, created the first time it is needed. (S3 spaces and the userSpace API come next.)
 */
const stores = new Map<string, LocalShardStore>();

function storeFor(workingDir: string): LocalShardStore {
  let store = stores.get(workingDir);
  if (!store) {
    store = new LocalShardStore(workingDir);
    stores.set(workingDir, store);
  }
  return store;
}

export interface SpaceHandle {
  id: number;
  store: LocalShardStore;
}

export async function defaultSpace(core: Core, tenantId: number): Promise<SpaceHandle> {
  const existing = await core.db.selectFrom('user_spaces').select(['id', 'working_dir']).where('tenant_id', '=', tenantId).where('is_default', '=', 1).executeTakeFirst();
  if (existing) return { id: existing.id, store: storeFor(existing.working_dir) };
  const root = join(core.config.dataDir, 'spaces', `tenant-${tenantId}`);
  const now = Date.now();
  try {
    const row = await core.db
      .insertInto('user_spaces')
      .values({
        tenant_id: tenantId,
        name: 'local',
        storage_json: JSON.stringify({ type: 'local', root }),
        shard_max_size: null,
        working_dir: root,
        is_default: 1,
        revision: 1,
        created_at: now,
        updated_at: now,
      })
      .returning(['id', 'working_dir'])
      .executeTakeFirstOrThrow();
    return { id: row.id, store: storeFor(row.working_dir) };
  } catch (err) {
    // Another request created it first.
    if (isUniqueViolation(err)) return defaultSpace(core, tenantId);
    throw err;
  }
}

export async function spaceById(core: Core, spaceId: number): Promise<SpaceHandle> {
  const row = await core.db.selectFrom('user_spaces').select(['id', 'working_dir']).where('id', '=', spaceId).executeTakeFirst();
  if (!row) throw notFound(`user space ${spaceId}`);
  return { id: row.id, store: storeFor(row.working_dir) };
}

/** Removes bytes no object references any more (older than the grace period), in every space. */
export async function sweepSpaces(core: Core): Promise<{ removed: number; bytes: number }> {
  const spaces = await core.db.selectFrom('user_spaces').select(['id', 'working_dir']).execute();
  const total = { removed: 0, bytes: 0 };
  for (const space of spaces) {
    const result = await storeFor(space.working_dir).sweep(core.config.shardGrace * 1000, async (hash) => {
      const ref = await core.db.selectFrom('objects').select('id').where('space_id', '=', space.id).where('hash', '=', hash).limit(1).executeTakeFirst();
      if (ref) return true;
      const part = await core.db.selectFrom('object_parts').select('object_id').where('space_id', '=', space.id).where('hash', '=', hash).limit(1).executeTakeFirst();
      return part !== undefined;
    });
    total.removed += result.removed;
    total.bytes += result.bytes;
  }
  return total;
}
