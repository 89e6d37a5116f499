import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { conflict, notFound } from '../lib/errors.ts';
import type { Bucket } from './models.ts';
import { releaseHeldIn } from './quota.ts';

const toBucket = (r: { id: number; name: string }): Bucket => ({ bucketID: r.id, name: r.name });

export async function createBucket(core: Core, actor: Actor, name: string): Promise<Bucket> {
  requireRole(actor, 'member');
  try {
    const row = await core.db
      .insertInto('buckets')
      .values({ tenant_id: actor.tenantId, name, created_at: Date.now() })
      .returning(['id', 'name'])
      .executeTakeFirstOrThrow();
    return toBucket(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`a bucket named '${name}' already exists`);
    throw err;
  }
}

export async function getBucketByName(core: Core, actor: Actor, name: string): Promise<Bucket> {
  requireRole(actor, 'viewer');
  const row = await core.db
    .selectFrom('buckets')
    .select(['id', 'name'])
    .where('tenant_id', '=', actor.tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row) throw notFound(`bucket '${name}'`);
  return toBucket(row);
}

export async function listBuckets(core: Core, actor: Actor): Promise<Bucket[]> {
  requireRole(actor, 'viewer');
  const rows = await core.db.selectFrom('buckets').select(['id', 'name']).where('tenant_id', '=', actor.tenantId).orderBy('name').execute();
  return rows.map(toBucket);
}

/** The bucket if it is the actor's tenant's; otherwise 404 (another tenant's bucket does not exist for them). */
export async function ownBucket(core: Core, actor: Actor, bucketId: number): Promise<{ id: number; name: string }> {
  const row = await core.db
    .selectFrom('buckets')
    .select(['id', 'name'])
    .where('id', '=', bucketId)
    .where('tenant_id', '=', actor.tenantId)
    .executeTakeFirst();
  if (!row) throw notFound(`bucket ${bucketId}`);
  return row;
}

/** Deletes a bucket and everything in it. */
export async function deleteBucket(core: Core, actor: Actor, bucketId: number): Promise<void> {
  requireRole(actor, 'member');
  await ownBucket(core, actor, bucketId);
  await core.db.transaction().execute(async (trx) => {
    await releaseHeldIn(trx, actor.tenantId, { bucketId });
    await trx.deleteFrom('buckets').where('id', '=', bucketId).where('tenant_id', '=', actor.tenantId).execute();
  });
}
