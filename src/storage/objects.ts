import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { sql, type ExpressionBuilder, type Selectable } from 'kysely';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { dialectOf } from '../db/dialect.ts';
import { inGroupCommit } from '../db/groupCommit.ts';
import type { Db } from '../db/index.ts';
import { prepared, preparedWrite } from '../db/prepared.ts';
import type { Database, ObjectsTable } from '../db/schema.ts';
import { AppError, badRequest, notFound } from '../lib/errors.ts';
import type { StoredShard } from '../backends/shardStore.ts';
import { asClientError } from '../backends/backendError.ts';
import { spaceById, spaceForUpload, type SpaceHandle } from '../spaces/spaces.ts';
import { holdWrites, withHold, type WriteHold } from '../backends/writeHolds.ts';
import { iso } from '../lib/time.ts';
import type { StorageObject } from './models.ts';
import { checkObjectPath } from '../lib/objectPaths.ts';
import { claimInGroup, claimUsage, deleteObjectsCounted, NOTHING, refuseOverRoom, type Usage } from './quota.ts';

const columns = [
  'o.id',
  'o.package_id',
  'o.path',
  'o.size',
  'o.hash',
  'o.space_id',
  'o.redundancy',
  'o.created_at',
  'o.updated_at',
] as const;
/** What writes return: the whole row, as `toStorageObject` needs it. */
export const OBJECT_RETURNING = ['id', 'package_id', 'path', 'size', 'hash', 'space_id', 'redundancy', 'created_at', 'updated_at'] as const;

export type ObjectRow = Omit<Selectable<ObjectsTable>, 'created_by' | 'source_mtime' | 'source_tag'>;

export function toStorageObject(r: ObjectRow): StorageObject {
  return {
    objectID: r.id,
    packageID: r.package_id,
    path: r.path,
    size: String(r.size),
    fileHash: `Full${r.hash}`,
    redundancy: { type: r.redundancy },
    createTime: iso(r.created_at),
    updateTime: iso(r.updated_at),
  };
}

/**
 * An object's JSON, exactly what `toStorageObject` and the `/v1` serializer make of its row, for
 * listings (the hot read): the database writes everything but the times, which `objectJson` adds
 * with `iso` (cheaper than SQLite's `strftime`), so a page skips its row objects, StorageObjects
 * and the serializer's escaping. test/storage/objectJson.test.ts keeps the two agreeing.
 *
 * Of the characters JSON must escape, an object path can only hold '"': lib/objectPaths.ts refuses
 * backslashes and control characters on every write. So the path is quoted by replacing '"' alone,
 * cheaper on PostgreSQL than `to_json` (figures: docs/BENCHMARKS.md, "Listing"). The redundancy is
 * one of the server's own words and needs no escaping.
 */
/** The columns, in this order: path, head (the object's JSON up to its times), created_at, updated_at. */
export function objectJsonColumns() {
  const head = sql<string>`'{"objectID":' || o.id || ',"packageID":' || o.package_id || ',"path":"' || replace(o.path, '"', '\\"') || '","size":"' || o.size || '","fileHash":"Full' || o.hash || '","redundancy":{"type":"' || o.redundancy || '"},"createTime":"'`;
  return [
    sql.ref<string>('o.path').as('path'),
    head.as('head'),
    sql.ref<number>('o.created_at').as('created_at'),
    sql.ref<number>('o.updated_at').as('updated_at'),
  ] as const;
}

/** The JSON of an object from the `head`, `created_at` and `updated_at` of its `objectJsonColumns`. */
export const objectJson = (head: string, createdAt: number, updatedAt: number): string =>
  `${head}${iso(createdAt)}","updateTime":"${iso(updatedAt)}"}`;

/** Objects of one package as `objectJsonColumns` rows (the caller has checked the package is the actor's). */
export function objectJsonOfPackage(db: Db, packageId: number) {
  return db.selectFrom('objects as o').select(objectJsonColumns()).where('o.package_id', '=', packageId);
}

/** Objects of the actor's tenant only (through package and bucket). */
function tenantObjects(core: Core, actor: Actor) {
  return objectsOfTenant(core.db, actor.tenantId);
}

function objectsOfTenant(db: Db, tenantId: number) {
  return db
    .selectFrom('objects as o')
    .innerJoin('packages as p', 'p.id', 'o.package_id')
    .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
    .select(columns)
    .where('b.tenant_id', '=', tenantId);
}

const objectOfTenant = prepared((db: Db, objectId: number, tenantId: number) => objectsOfTenant(db, tenantId).where('o.id', '=', objectId));

/** Objects of one package (the caller has checked the package is the actor's). */
export function objectsOfPackage(db: Db, packageId: number) {
  return db.selectFrom('objects as o').select(columns).where('o.package_id', '=', packageId);
}

const packageOfTenant = prepared((db: Db, packageId: number, tenantId: number) =>
  db
    .selectFrom('packages as p')
    .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
    .select('p.id')
    .where('p.id', '=', packageId)
    .where('b.tenant_id', '=', tenantId),
);

export async function ownPackage(core: Core, actor: Actor, packageId: number): Promise<void> {
  const [row] = await packageOfTenant(core.db, packageId, actor.tenantId);
  if (!row) throw notFound(`package ${packageId}`);
}

/** A package of the tenant with the tenant's usage row (its columns null when it has none), in one read per upload. */
const packageOfTenantWithUsage = prepared((db: Db, packageId: number, tenantId: number) =>
  db
    .selectFrom('packages as p')
    .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
    .leftJoin('tenant_usage as u', 'u.tenant_id', 'b.tenant_id')
    .select(['p.id', 'u.used_bytes', 'u.used_objects', 'u.local_bytes', 'u.max_bytes', 'u.max_objects'])
    .where('p.id', '=', packageId)
    .where('b.tenant_id', '=', tenantId),
);

/** The shard store of a space that keeps object bytes. */
export function storeOf(space: SpaceHandle) {
  if (!space.store) throw new AppError('backend_failed', `user space ${space.id} keeps no object bytes (its shardStore is null)`);
  return space.store;
}

/**
 * Streams bytes into a space, refusing more than one object may hold (413) or the space has room
 * for (507); `what` names them in the error.
 */
export async function storeShard(core: Core, space: SpaceHandle, content: Readable, what: string): Promise<StoredShard> {
  try {
    return await storeOf(space).write(content, core.config.maxObjectSize);
  } catch (err) {
    throw asClientError(err, { what, spaceId: space.id });
  }
}

/** Where a synced object came from: the source file's time and version token (absent for uploads). */
export interface SourceOrigin {
  mtimeMs?: number;
  tag?: string;
}

/**
 * One upload: files are streamed into the space as they arrive; `commit` makes all of them visible
 * at once (replacing objects at the same paths). From its first byte until its commit has ended
 * it holds the sweeper off its bytes, however long it takes; one given up must be `release`d.
 * An upload never committed leaves only unreferenced bytes, which the sweeper then removes.
 */
export class Upload {
  private readonly files = new Map<string, { hash: string; size: number; origin?: SourceOrigin }>();
  private hold: WriteHold | undefined;

  constructor(
    private readonly core: Core,
    private readonly space: SpaceHandle,
    /** The user whose upload it is (their objects go when their data is deleted). */
    private readonly createdBy: number,
    private readonly packageId?: number,
  ) {}

  async add(path: string, content: Readable, field = 'files[].filename', origin?: SourceOrigin): Promise<StoredShard> {
    checkObjectPath(path, field);
    this.hold ??= holdWrites();
    const shard = await storeShard(this.core, this.space, content, `object '${path}'`);
    this.files.set(path, { ...shard, origin });
    return shard;
  }

  get count(): number {
    return this.files.size;
  }

  /** Ends the upload's hold on the sweeper without committing (commit does it too). */
  release(): void {
    this.hold?.release();
  }

  /**
   * Commits into the upload's package, or into the one `intoPackage` gives within the same
   * transaction (it may create it). The tenant's quota counts the new objects in place of those
   * they replace; when they do not fit, nothing is committed (507).
   */
  async commit(intoPackage?: (trx: Db) => Promise<number>): Promise<StorageObject[]> {
    try {
      this.hold?.assertSafe();
      return await this.commitRows(intoPackage);
    } finally {
      this.release();
    }
  }

  private async commitRows(intoPackage?: (trx: Db) => Promise<number>): Promise<StorageObject[]> {
    const now = Date.now();
    const files = [...this.files];
    const adding = { bytes: files.reduce((n, [, f]) => n + f.size, 0), objects: files.length };
    const committed = await inGroupCommit(this.core.db, async (trx) => {
      const packageId = intoPackage ? await intoPackage(trx) : this.packageId!;
      const write = (path: string, { hash, size, origin }: { hash: string; size: number; origin?: SourceOrigin }) =>
        [packageId, path, size, hash, this.space.id, this.createdBy, now, origin?.mtimeMs ?? null, origin?.tag ?? null] as const;
      const out: ObjectRow[] = [];
      const replaced: (ReplacedObject | undefined)[] = [];
      const refused = await claimInGroup(trx, this.core.config, this.space.tenantId, adding, async (fitsAnyway) => {
        // Sure to fit: each object is written as what it replaces is read (one statement on PostgreSQL).
        for (const [path, file] of files) {
          if (!fitsAnyway) replaced.push((await replacedObject(trx, packageId, path)).rows[0]);
          else {
            const { row, old } = await replaceObject(trx, ...write(path, file));
            out.push(row);
            replaced.push(old);
          }
        }
        return freedBy(replaced);
      });
      if (refused) {
        // Thrown, what `intoPackage` wrote goes with the transaction (the others sharing it run again without this one).
        if (intoPackage) throw refused;
        // Answered once the shared transaction, which this one left untouched, has committed.
        return refused;
      }
      for (const [i, [path, file]] of files.entries()) {
        if (out.length < files.length) out.push((await upsertObject(trx, ...write(path, file))).rows[0]!);
        // Replacing an unfinished multipart upload drops its parts.
        if (replaced[i]?.redundancy === 'multipartUpload') await deleteParts(trx, replaced[i].id);
      }
      return out;
    });
    if (committed instanceof AppError) throw committed;
    return committed.map(toStorageObject);
  }
}

/** What the objects `replaced` give back. */
function freedBy(replaced: (ReplacedObject | undefined)[]): Usage {
  const freed = { ...NOTHING };
  for (const old of replaced) {
    if (!old) continue;
    freed.bytes += Number(old.size) + Number(old.parts_size ?? 0);
    freed.objects++;
  }
  return freed;
}

interface ReplacedObject {
  id: number;
  size: number;
  redundancy: string;
  parts_size: number | null;
}

/** The object an upload would replace at `path`, with what its parts hold (an unfinished multipart upload's). */
const replacedObject = preparedWrite((db: Db, packageId: number, path: string) =>
  db
    .selectFrom('objects as o')
    .select((eb) => ['o.id', 'o.size', 'o.redundancy', partsSize(eb).as('parts_size')])
    .where('o.package_id', '=', packageId)
    .where('o.path', '=', path),
);

/** The sum of the sizes of an object's parts (an unfinished multipart upload's), for the object `o`. */
function partsSize(eb: ExpressionBuilder<Database & { o: ObjectsTable }, 'o'>) {
  return eb
    .selectFrom('object_parts as op')
    .select((e) => e.fn.sum<number>('op.size').as('s'))
    .whereRef('op.object_id', '=', 'o.id');
}

const upsertObject = preparedWrite(
  (
    db: Db,
    packageId: number,
    path: string,
    size: number,
    hash: string,
    spaceId: number,
    createdBy: number,
    now: number,
    sourceMtime: number | null,
    sourceTag: string | null,
  ) => {
    const replaced = {
      size,
      hash,
      space_id: spaceId,
      redundancy: 'none' as const,
      created_by: createdBy,
      updated_at: now,
      source_mtime: sourceMtime,
      source_tag: sourceTag,
    };
    return db
      .insertInto('objects')
      .values({ package_id: packageId, path, created_at: now, ...replaced })
      .onConflict((oc) => oc.columns(['package_id', 'path']).doUpdateSet(replaced))
      .returning(OBJECT_RETURNING);
  },
);

/** PostgreSQL: `upsertObject` that also returns what the row replaced (null columns: nothing), read by the same statement. */
const upsertObjectReturningOld = preparedWrite(
  (
    db: Db,
    packageId: number,
    path: string,
    size: number,
    hash: string,
    spaceId: number,
    createdBy: number,
    now: number,
    sourceMtime: number | null,
    sourceTag: string | null,
  ) => {
    const replaced = {
      size,
      hash,
      space_id: spaceId,
      redundancy: 'none' as const,
      created_by: createdBy,
      updated_at: now,
      source_mtime: sourceMtime,
      source_tag: sourceTag,
    };
    return db
      .with('old', (q) =>
        q
          .selectFrom('objects as o')
          .select((eb) => ['o.id', 'o.size', 'o.redundancy', partsSize(eb).as('parts_size')])
          .where('o.package_id', '=', packageId)
          .where('o.path', '=', path),
      )
      .insertInto('objects')
      .values({ package_id: packageId, path, created_at: now, ...replaced })
      .onConflict((oc) => oc.columns(['package_id', 'path']).doUpdateSet(replaced))
      .returning((eb) => [
        ...OBJECT_RETURNING,
        eb.selectFrom('old').select('old.id').as('old_id'),
        eb.selectFrom('old').select('old.size').as('old_size'),
        eb.selectFrom('old').select('old.redundancy').as('old_redundancy'),
        eb.selectFrom('old').select('old.parts_size').as('old_parts_size'),
      ]);
  },
);

/**
 * Writes an object at its path and returns it with the object it replaced, if any: on PostgreSQL
 * one statement (its snapshot is current, as the tenant's usage row, held by the transaction, keeps
 * other counting writers out); on SQLite, where a statement costs no round trip, a read then the write.
 */
async function replaceObject(
  trx: Db,
  ...args: Parameters<typeof upsertObject> extends [Db, ...infer A] ? A : never
): Promise<{ row: ObjectRow; old: ReplacedObject | undefined }> {
  if (dialectOf(trx) === 'postgres') {
    const { old_id, old_size, old_redundancy, old_parts_size, ...row } = (await upsertObjectReturningOld(trx, ...args)).rows[0]!;
    return {
      row,
      old: old_id === null ? undefined : { id: old_id, size: old_size!, redundancy: old_redundancy!, parts_size: old_parts_size },
    };
  }
  const [old] = (await replacedObject(trx, args[0], args[1])).rows;
  return { row: (await upsertObject(trx, ...args)).rows[0]!, old };
}

/** The bytes of a package's objects (each in full; their parts not counted). */
export async function bytesOfPackage(db: Db, packageId: number): Promise<number> {
  const { bytes } = await db
    .selectFrom('objects')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('bytes'))
    .where('package_id', '=', packageId)
    .executeTakeFirstOrThrow();
  return Number(bytes);
}

const deleteParts = preparedWrite((db: Db, objectId: number) => db.deleteFrom('object_parts').where('object_id', '=', objectId));

/**
 * An upload into a package; bytes go to the `affinity` space (0 or absent: the tenant's default).
 * A body of `declaredBytes` that cannot fit in the tenant's quota, even in place of everything the
 * package holds, is refused before any file is stored.
 */
export async function beginUpload(core: Core, actor: Actor, packageId: number, affinity?: number, declaredBytes = 0): Promise<Upload> {
  requireRole(actor, 'member');
  const [usage] = await packageOfTenantWithUsage(core.db, packageId, actor.tenantId);
  if (!usage) throw notFound(`package ${packageId}`);
  if (declaredBytes > 0)
    await refuseOverRoom(core.config, usage, { bytes: declaredBytes, objects: 0 }, () => bytesOfPackage(core.db, packageId));
  return new Upload(core, await spaceForUpload(core, actor.tenantId, affinity), actor.userId, packageId);
}

/**
 * Every object of a package, by path, in one answer: at most `YUNJI_PACKAGE_OBJECTS_LIMIT` of them
 * (the spec has no paging here); a larger package is refused, pointing at the paged listing.
 */
export async function getPackageObjects(core: Core, actor: Actor, packageId: number): Promise<StorageObject[]> {
  requireRole(actor, 'viewer');
  await ownPackage(core, actor, packageId);
  const most = core.config.packageObjectsLimit;
  const rows = await tenantObjects(core, actor)
    .where('o.package_id', '=', packageId)
    .orderBy('o.path')
    .limit(most + 1)
    .execute();
  if (rows.length > most) {
    throw badRequest(
      `package ${packageId} has more than ${most} objects, more than one answer holds; list them page by page with /v1/object/listByPath (isPrefix=true, maxKeys, continuationToken)`,
      'packageID',
    );
  }
  return rows.map(toStorageObject);
}

export interface OpenedObject {
  object: StorageObject;
  size: number;
  read: (range?: { start: number; end: number }) => Promise<Readable>;
  /** The bytes' file opened for reading, where the space is a local directory; undefined elsewhere. */
  openFile: () => Promise<FileHandle | undefined>;
}

async function opened(core: Core, row: ObjectRow): Promise<OpenedObject> {
  const space = await spaceById(core, row.space_id);
  return {
    object: toStorageObject(row),
    size: row.size,
    read: (range) =>
      storeOf(space)
        .read(row.hash, range)
        .catch((err: unknown) => Promise.reject(asClientError(err))),
    openFile: () =>
      storeOf(space)
        .openFile(row.hash)
        .catch((err: unknown) => Promise.reject(asClientError(err))),
  };
}

/** One object of the actor's tenant, or 404. */
export async function tenantObject(core: Core, actor: Actor, objectId: number): Promise<ObjectRow> {
  const [row] = await objectOfTenant(core.db, objectId, actor.tenantId);
  if (!row) throw notFound(`object ${objectId}`);
  return row;
}

/** An object and a way to read its bytes. */
export async function openObject(core: Core, actor: Actor, objectId: number): Promise<OpenedObject> {
  requireRole(actor, 'viewer');
  return opened(core, await tenantObject(core, actor, objectId));
}

/** The same, by `<bucket>/<package>/<object path>`. */
export async function openObjectByPath(core: Core, actor: Actor, fullPath: string): Promise<OpenedObject> {
  requireRole(actor, 'viewer');
  const [bucket, pkg, ...rest] = fullPath.split('/');
  if (!bucket || !pkg || rest.length === 0) throw badRequest("path must be '<bucket>/<package>/<object path>'", 'path');
  const objectPath = checkObjectPath(rest.join('/'), 'path');
  const row = await tenantObjects(core, actor)
    .where('b.name', '=', bucket)
    .where('p.name', '=', pkg)
    .where('o.path', '=', objectPath)
    .executeTakeFirst();
  if (!row) throw notFound(`object '${fullPath}'`);
  return opened(core, row);
}

/**
 * Moves objects to another package and/or path; each item succeeds or fails on its own (a target
 * path that is taken fails that item). Returns the ids moved.
 */
export async function moveObjects(
  core: Core,
  actor: Actor,
  movings: { objectID: number; packageID: number; path: string }[],
): Promise<number[]> {
  requireRole(actor, 'member');
  const moved: number[] = [];
  for (const m of movings) {
    try {
      checkObjectPath(m.path);
      const row = await tenantObjects(core, actor).where('o.id', '=', m.objectID).executeTakeFirst();
      if (!row) continue;
      await ownPackage(core, actor, m.packageID);
      // A moved object is no longer the copy of the source file at its old path (see PackageTree).
      await core.db
        .updateTable('objects')
        .set({ package_id: m.packageID, path: m.path, updated_at: Date.now(), source_mtime: null, source_tag: null })
        .where('id', '=', m.objectID)
        .execute();
      moved.push(m.objectID);
    } catch (err) {
      if (!(err instanceof AppError) && !isUniqueViolation(err)) throw err;
    }
  }
  return moved;
}

/**
 * Copies objects to new paths without copying bytes (a new row naming the same shard). Each item
 * succeeds or fails on its own; the answer keeps the request's order, with null where an item failed.
 */
export async function cloneObjects(
  core: Core,
  actor: Actor,
  clonings: { objectID: number; newPath: string; newPackageID: number }[],
): Promise<(StorageObject | null)[]> {
  requireRole(actor, 'member');
  const out: (StorageObject | null)[] = [];
  for (const c of clonings) {
    try {
      checkObjectPath(c.newPath, 'newPath');
      const src = await tenantObjects(core, actor).where('o.id', '=', c.objectID).executeTakeFirst();
      if (!src) throw notFound(`object ${c.objectID}`);
      await ownPackage(core, actor, c.newPackageID);
      const row = await withHold(async (hold) => {
        // The source may be deleted meanwhile and its bytes swept: they are pinned until the clone names them.
        if (src.redundancy !== 'multipartUpload' && !(await storeOf(await spaceById(core, src.space_id)).keepStored(src.hash)))
          throw notFound(`the bytes of object ${c.objectID}`);
        hold.assertSafe();
        return cloneRow(core, actor, src, c);
      });
      out.push(toStorageObject(row));
    } catch (err) {
      if (!(err instanceof AppError) && !isUniqueViolation(err)) throw err;
      out.push(null);
    }
  }
  return out;
}

/** The clone's row, counted in full against the tenant's quota, though it shares its bytes. */
async function cloneRow(core: Core, actor: Actor, src: ObjectRow, c: { newPath: string; newPackageID: number }): Promise<ObjectRow> {
  const now = Date.now();
  return core.db.transaction().execute(async (trx) => {
    const refused = await claimUsage(trx, core.config, actor.tenantId, { bytes: src.size, objects: 1 });
    if (refused) throw refused;
    return trx
      .insertInto('objects')
      .values({
        package_id: c.newPackageID,
        path: c.newPath,
        size: src.size,
        hash: src.hash,
        space_id: src.space_id,
        redundancy: src.redundancy,
        created_by: actor.userId,
        created_at: now,
        updated_at: now,
      })
      .returning(OBJECT_RETURNING)
      .executeTakeFirstOrThrow();
  });
}

/** Deletes the actor's objects among `ids`; ids that are missing (or another tenant's) are ignored, as the spec says. */
export async function deleteObjects(core: Core, actor: Actor, ids: number[]): Promise<void> {
  requireRole(actor, 'member');
  if (ids.length === 0) return;
  const own = await tenantObjects(core, actor).where('o.id', 'in', ids).execute();
  if (own.length === 0) return;
  await core.db.transaction().execute((trx) =>
    deleteObjectsCounted(
      trx,
      actor.tenantId,
      own.map((o) => o.id),
    ),
  );
}
