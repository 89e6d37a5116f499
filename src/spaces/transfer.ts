import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../core.ts';
import { backendFailed, notFound } from '../errors.ts';
import { ownBucket } from '../storage/buckets.ts';
import type { Package } from '../storage/models.ts';
import { objectsOfPackage, ownPackage, storeOf, Upload } from '../storage/objects.ts';
import { insertPackage } from '../storage/packages.ts';
import { joinKey } from './backend.ts';
import { checkSpacePath } from './spacePaths.ts';
import { asClientError, spaceById, spaceForUpload, tenantSpace, type SpaceHandle } from './spaces.ts';

/**
 * Moving files between a space's own folders and packages: `createPackage` imports a file or a
 * folder of a space into a new package; `downloadPackage` writes a package's objects into a folder
 * of a space. Paths are relative to the space's root (not its workingDir), as the spec says.
 */
const CONCURRENCY = 4;

/** Runs `work` over `items` with at most `limit` at once; the first failure stops new work and is thrown. */
async function eachLimited<T>(items: AsyncIterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: unknown;
  for await (const item of items) {
    if (failure) break;
    const p = work(item).then(
      () => void running.delete(p),
      (err: unknown) => {
        running.delete(p);
        failure ??= err;
      },
    );
    running.add(p);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure) throw failure;
}

export interface ImportRequest {
  userSpaceID: number;
  path: string;
  bucketID: number;
  name: string;
  spaceAffinity?: number;
}

/** A new package holding the files at `path` in the space (a file: that one, by its name; a folder: everything under it). */
export async function importPackage(core: Core, actor: Actor, request: ImportRequest): Promise<Package> {
  requireRole(actor, 'member');
  const source = await tenantSpace(core, actor.tenantId, request.userSpaceID);
  const path = checkSpacePath(request.path, 'path');
  await ownBucket(core, actor, request.bucketID);
  const target = await spaceForUpload(core, actor.tenantId, request.spaceAffinity, 'spaceAffinity');
  const upload = new Upload(core, target, actor.userId);
  const exact = path === '' ? undefined : await source.backend.stat(path).catch((err: unknown) => Promise.reject(asClientError(err)));
  try {
    await eachLimited(source.backend.list(path), CONCURRENCY, async (entry) => {
      const name = exact ? entry.key.slice(entry.key.lastIndexOf('/') + 1) : path === '' ? entry.key : entry.key.slice(path.length + 1);
      await upload.add(name, await source.backend.get(entry.key), `file '${entry.key}'`);
    });
  } catch (err) {
    throw asClientError(err);
  }
  if (upload.count === 0 && path !== '') throw notFound(`no file at '${path}' in user space ${source.id}`);
  let created: Package | undefined;
  await upload.commit(async (trx) => {
    created = await insertPackage(trx, request.bucketID, request.name);
    return created.packageID;
  });
  return created!;
}

export interface ExportRequest {
  userSpaceID: number;
  packageID: number;
  rootPath: string;
}

/**
 * Writes every object of the package to `<rootPath>/<object path>` in the space (each file
 * atomically, its modification time the object's update time). Files that fail do not stop the
 * others; the answer names them.
 */
export async function exportPackage(core: Core, actor: Actor, request: ExportRequest): Promise<{ written: number }> {
  requireRole(actor, 'member');
  const target = await tenantSpace(core, actor.tenantId, request.userSpaceID);
  const rootPath = checkSpacePath(request.rootPath, 'rootPath');
  await ownPackage(core, actor, request.packageID);
  const spaces = new Map<number, SpaceHandle>();
  const failures: string[] = [];
  let written = 0;
  let total = 0;
  await eachLimited(completeObjects(core, request.packageID), CONCURRENCY, async (object) => {
    total++;
    try {
      let space = spaces.get(object.space_id);
      if (!space) spaces.set(object.space_id, (space = await spaceById(core, object.space_id)));
      const content = await storeOf(space).read(object.hash);
      await target.backend.put(joinKey(rootPath, object.path), content, { mtimeMs: object.updated_at });
      written++;
    } catch (err) {
      failures.push(`'${object.path}': ${(err as Error).message}`);
    }
  });
  if (failures.length > 0) {
    throw backendFailed(`wrote ${written} of ${total} objects to user space ${target.id}; failed: ${failures.slice(0, 5).join('; ')}${failures.length > 5 ? ` and ${failures.length - 5} more` : ''}`);
  }
  return { written };
}

/** The package's finished objects in path order, a page at a time (unfinished multipart uploads have no bytes yet). */
async function* completeObjects(core: Core, packageId: number) {
  let after = '';
  for (;;) {
    const page = await objectsOfPackage(core.db, packageId).where('o.path', '>', after).where('o.redundancy', '!=', 'multipartUpload').orderBy('o.path').limit(500).execute();
    yield* page;
    if (page.length < 500) return;
    after = page[page.length - 1]!.path;
  }
}
