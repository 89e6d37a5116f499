import { PassThrough, type Readable } from 'node:stream';
import { sql } from 'kysely';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import type { Db } from '../db/index.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { AppError, badRequest, conflict } from '../lib/errors.ts';
import { spaceById, spaceForUpload, type SpaceHandle } from '../spaces/spaces.ts';
import { withHold } from '../backends/writeHolds.ts';
import type { StorageObject } from './models.ts';
import { OBJECT_RETURNING, ownPackage, storeOf, storeShard, tenantObject, toStorageObject } from './objects.ts';
import { checkObjectPath } from '../lib/objectPaths.ts';
import { checkRoom, claimReplacing, claimUsage, lockUsage } from './quota.ts';

/**
 * Multipart upload (spec 3.9–3.11): an object is created empty with redundancy `multipartUpload`;
 * parts are stored as shards under their index (the same index replaces); completing streams the
 * listed parts, in that order and repeats allowed, into one new shard and makes it the object's
 * content. Parts not listed are dropped (their bytes are swept).
 */
const EMPTY_HASH = '0'.repeat(64);
export const MAX_PART_INDEX = 100_000;

export async function newMultipartUpload(core: Core, actor: Actor, packageId: number, path: string): Promise<StorageObject> {
  requireRole(actor, 'member');
  checkObjectPath(path);
  await ownPackage(core, actor, packageId);
  const space = await spaceForUpload(core, actor.tenantId, undefined);
  const now = Date.now();
  try {
    const row = await core.db.transaction().execute(async (trx) => {
      const refused = await claimUsage(trx, core.config, actor.tenantId, { bytes: 0, objects: 1 });
      if (refused) throw refused;
      return trx
        .insertInto('objects')
        .values({
          package_id: packageId,
          path,
          size: 0,
          hash: EMPTY_HASH,
          space_id: space.id,
          redundancy: 'multipartUpload',
          created_by: actor.userId,
          created_at: now,
          updated_at: now,
        })
        .returning(OBJECT_RETURNING)
        .executeTakeFirstOrThrow();
    });
    return toStorageObject(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`package ${packageId} already has an object at '${path}'`);
    throw err;
  }
}

async function multipartObject(core: Core, actor: Actor, objectId: number) {
  const row = await tenantObject(core, actor, objectId);
  if (row.redundancy !== 'multipartUpload') throw conflict(`object ${objectId} is not a multipart upload in progress`);
  return row;
}

/** Stores a part; a body of `declaredBytes` that cannot fit in the tenant's quota, even in place of the part it replaces, is refused before it is stored. */
export async function uploadPart(
  core: Core,
  actor: Actor,
  objectId: number,
  index: number,
  content: Readable,
  declaredBytes = 0,
): Promise<void> {
  requireRole(actor, 'member');
  const row = await multipartObject(core, actor, objectId);
  const partAt = async (db: Db) => {
    const old = await db
      .selectFrom('object_parts')
      .select('size')
      .where('object_id', '=', objectId)
      .where('part_index', '=', index)
      .executeTakeFirst();
    return old ? Number(old.size) : 0;
  };
  if (declaredBytes > 0) await checkRoom(core, actor.tenantId, { bytes: declaredBytes, objects: 0 }, () => partAt(core.db));
  const space = await spaceById(core, row.space_id);
  // The sweeper stays off the part's bytes until its row names them.
  await withHold(async (hold) => {
    const shard = await storeShard(core, space, content, `part ${index}`);
    hold.assertSafe();
    // A part's bytes count against the tenant's quota until the upload is completed or deleted.
    await core.db.transaction().execute(async (trx) => {
      const refused = await claimReplacing(trx, core.config, actor.tenantId, { bytes: shard.size, objects: 0 }, async () => ({
        bytes: await partAt(trx),
        objects: 0,
      }));
      if (refused) throw refused;
      await trx
        .insertInto('object_parts')
        .values({ object_id: objectId, part_index: index, size: shard.size, hash: shard.hash, space_id: space.id, created_at: Date.now() })
        .onConflict((oc) => oc.columns(['object_id', 'part_index']).doUpdateSet({ size: shard.size, hash: shard.hash, space_id: space.id }))
        .execute();
    });
  });
}

export async function completeMultipartUpload(core: Core, actor: Actor, objectId: number, indexes: number[]): Promise<StorageObject> {
  requireRole(actor, 'member');
  if (indexes.length === 0) throw badRequest('indexes must list at least one part', 'indexes');
  const row = await multipartObject(core, actor, objectId);
  const parts = await core.db
    .selectFrom('object_parts')
    .select(['part_index', 'size', 'hash', 'space_id'])
    .where('object_id', '=', objectId)
    .execute();
  const byIndex = new Map(parts.map((p) => [p.part_index, p]));
  const missing = [...new Set(indexes)].filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw badRequest(`no part uploaded for index ${missing.slice(0, 10).join(', ')}`, 'indexes');
  const total = indexes.reduce((n, i) => n + byIndex.get(i)!.size, 0);
  if (total > core.config.maxObjectSize)
    throw new AppError('too_large', `the joined object would be ${total} bytes, over ${core.config.maxObjectSize}`);
  // The object's bytes take the place of all its parts' (unlisted ones are dropped): refused before any byte is joined when they cannot fit.
  await checkRoom(core, actor.tenantId, { bytes: total - parts.reduce((n, p) => n + p.size, 0), objects: 0 });

  const space = await spaceById(core, row.space_id);
  // The sweeper stays off the joined bytes until the object names them.
  return withHold(async (hold) => {
    // A part's space is looked up once, however often the part is listed.
    const partSpaces = new Map<number, SpaceHandle>([[space.id, space]]);
    for (const p of parts) if (!partSpaces.has(p.space_id)) partSpaces.set(p.space_id, await spaceById(core, p.space_id));
    // Join the parts by streaming them one after another into the store (hashing as it goes).
    const joined = new PassThrough();
    const pump = (async () => {
      for (const i of indexes) {
        const part = byIndex.get(i)!;
        const source = await storeOf(partSpaces.get(part.space_id)!).read(part.hash);
        for await (const chunk of source) if (!joined.write(chunk)) await new Promise((r) => joined.once('drain', r));
      }
      joined.end();
    })().catch((err: unknown) => joined.destroy(err as Error));
    const shard = await storeShard(core, space, joined, `object ${objectId}`);
    await pump;

    hold.assertSafe();
    const now = Date.now();
    const done = await core.db.transaction().execute(async (trx) => {
      await lockUsage(trx, actor.tenantId);
      const held = await trx
        .selectFrom('object_parts')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('bytes'))
        .where('object_id', '=', objectId)
        .executeTakeFirstOrThrow();
      const refused = await claimUsage(trx, core.config, actor.tenantId, { bytes: shard.size - Number(held.bytes), objects: 0 });
      if (refused) throw refused;
      const updated = await trx
        .updateTable('objects')
        .set({ size: shard.size, hash: shard.hash, redundancy: 'none', updated_at: now })
        .where('id', '=', objectId)
        .where('redundancy', '=', 'multipartUpload')
        .returning(OBJECT_RETURNING)
        .executeTakeFirst();
      if (!updated) throw conflict(`object ${objectId} was completed by another request`);
      await trx.deleteFrom('object_parts').where('object_id', '=', objectId).execute();
      return updated;
    });
    return toStorageObject(done);
  });
}
