import { requireRole, type Actor } from '../accounts/actor.ts';
import { iso } from '../lib/time.ts';
import type { Core } from '../jobs/core.ts';
import type { Db } from '../db/index.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { conflict, notFound } from '../lib/errors.ts';
import { ownBucket } from './buckets.ts';
import type { Package } from './models.ts';
import { releaseHeldIn } from './quota.ts';

const toPackage = (r: { id: number; name: string; bucket_id: number; created_at: number }): Package => ({
  packageID: r.id,
  name: r.name,
  bucketID: r.bucket_id,
  createTime: iso(r.created_at),
});

/** Packages of the actor's tenant only (through their bucket). */
function tenantPackages(core: Core, actor: Actor) {
  return core.db
    .selectFrom('packages as p')
    .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
    .select(['p.id', 'p.name', 'p.bucket_id', 'p.created_at'])
    .where('b.tenant_id', '=', actor.tenantId);
}

export async function createPackage(core: Core, actor: Actor, bucketId: number, name: string): Promise<Package> {
  requireRole(actor, 'member');
  await ownBucket(core, actor, bucketId);
  return insertPackage(core.db, bucketId, name);
}

/** Adds a package to a bucket the caller has checked is the actor's (409 when the name is taken). */
export async function insertPackage(db: Db, bucketId: number, name: string): Promise<Package> {
  try {
    const row = await db
      .insertInto('packages')
      .values({ bucket_id: bucketId, name, created_at: Date.now() })
      .returning(['id', 'name', 'bucket_id', 'created_at'])
      .executeTakeFirstOrThrow();
    return toPackage(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`bucket ${bucketId} already has a package named '${name}'`);
    throw err;
  }
}

export async function getPackageByFullName(core: Core, actor: Actor, bucketName: string, packageName: string): Promise<Package> {
  requireRole(actor, 'viewer');
  const row = await tenantPackages(core, actor).where('b.name', '=', bucketName).where('p.name', '=', packageName).executeTakeFirst();
  if (!row) throw notFound(`package '${bucketName}/${packageName}'`);
  return toPackage(row);
}

export async function listBucketPackages(core: Core, actor: Actor, bucketId: number): Promise<Package[]> {
  requireRole(actor, 'viewer');
  await ownBucket(core, actor, bucketId);
  return (await tenantPackages(core, actor).where('p.bucket_id', '=', bucketId).orderBy('p.name').execute()).map(toPackage);
}

/** Deletes a package and everything in it. */
export async function deletePackage(core: Core, actor: Actor, packageId: number): Promise<void> {
  requireRole(actor, 'member');
  const row = await tenantPackages(core, actor).where('p.id', '=', packageId).executeTakeFirst();
  if (!row) throw notFound(`package ${packageId}`);
  await core.db.transaction().execute(async (trx) => {
    await releaseHeldIn(trx, actor.tenantId, { packageId });
    await trx.deleteFrom('packages').where('id', '=', packageId).execute();
  });
}
