import { Type } from '@sinclair/typebox';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { AppError, backendFailed, notFound } from '../lib/errors.ts';
import { defineAction, type JobContext } from '../jobs/actions.ts';
import { failureOf, submitJob, waitForJob } from '../jobs/store.ts';
import { ownBucket } from './buckets.ts';
import type { Package } from './models.ts';
import { bytesOfPackage, objectsOfPackage, ownPackage, storeOf, Upload } from './objects.ts';
import { insertPackage } from './packages.ts';
import { filesBackendOf } from './localFiles.ts';
import { checkRoom, LocalBytesBudget } from './quota.ts';
import { eachLimited } from '../lib/pool.ts';
import { joinKey, type Backend } from '../backends/backend.ts';
import { assertOutsideReserved } from '../backends/layout.ts';
import { checkSpacePath } from '../spaces/spacePaths.ts';
import { isS3 } from '../spaces/storageConfig.ts';
import { asClientError } from '../backends/backendError.ts';
import { spaceById, spaceForUpload, tenantSpace, type SpaceHandle } from '../spaces/spaces.ts';

/**
 * Moving files between a space's own folders and packages: `createPackage` imports a file or a
 * folder of a space into a new package; `downloadPackage` writes a package's objects into a folder
 * of a space. Paths are relative to the space's root (not its workingDir), as the spec says.
 */
const CONCURRENCY = 4;

const ImportParams = Type.Object(
  {
    userSpaceID: Type.Integer({ minimum: 1 }),
    path: Type.String(),
    bucketID: Type.Integer({ minimum: 1 }),
    name: Type.String(),
    spaceAffinity: Type.Integer({ minimum: 0, default: 0 }),
  },
  { additionalProperties: false },
);
const ExportParams = Type.Object(
  { userSpaceID: Type.Integer({ minimum: 1 }), packageID: Type.Integer({ minimum: 1 }), rootPath: Type.String() },
  { additionalProperties: false },
);

export interface ImportRequest {
  userSpaceID: number;
  path: string;
  bucketID: number;
  name: string;
  spaceAffinity?: number;
}

export interface ExportRequest {
  userSpaceID: number;
  packageID: number;
  rootPath: string;
}

/** Who a transfer job acts for: the tenant of the job and the user whose objects the import makes. */
interface Owner {
  tenantId: number;
  userId: number;
}

const ownerOf = (job: { tenantId: number; createdBy: number | null }): Owner => ({ tenantId: job.tenantId, userId: job.createdBy ?? 0 });
// The checks below take an actor; a job re-checks with its owner acting as a member of its tenant.
const asActor = (o: Owner): Actor => ({
  kind: 'api_key',
  credentialId: 0,
  token: '',
  userId: o.userId,
  tenantId: o.tenantId,
  role: 'member',
  membershipStatus: 'active',
  expiresAt: null,
});

/** What can be checked before any byte moves: roles, ids of this tenant, paths, the source existing. */
async function checkImport(core: Core, actor: Actor, request: ImportRequest): Promise<void> {
  requireRole(actor, 'member');
  const source = await tenantSpace(core, actor.tenantId, request.userSpaceID);
  const path = checkSpacePath(request.path, 'path');
  await ownBucket(core, actor, request.bucketID);
  await spaceForUpload(core, actor.tenantId, request.spaceAffinity, 'spaceAffinity');
  if (path !== '') {
    const exact = await source.backend.stat(path).catch((err: unknown) => Promise.reject(asClientError(err)));
    if (!exact) {
      const entries = source.backend.list(path)[Symbol.asyncIterator]();
      const first = await entries.next().catch((err: unknown) => Promise.reject(asClientError(err)));
      if (first.done) throw notFound(`no file at '${path}' in user space ${source.id}`);
    }
  }
}

async function checkExport(core: Core, actor: Actor, request: ExportRequest): Promise<void> {
  requireRole(actor, 'member');
  const target = await tenantSpace(core, actor.tenantId, request.userSpaceID);
  const rootPath = checkSpacePath(request.rootPath, 'rootPath');
  await ownPackage(core, actor, request.packageID);
  // A local space is the server's own disk: the package's bytes, less those of the files they would
  // replace, must fit in the room the tenant's quota has left; each file is charged as it is written (localFiles.ts).
  if (!isS3(target.storage)) {
    await checkRoom(core, actor.tenantId, { bytes: await bytesOfPackage(core.db, request.packageID), objects: 0 }, () =>
      bytesInTheWay(core, target.backend, rootPath, request.packageID),
    );
  }
}

/** The bytes of the files at the paths an export of the package to `rootPath` would write. */
async function bytesInTheWay(core: Core, backend: Backend, rootPath: string, packageId: number): Promise<number> {
  let bytes = 0;
  for await (const object of completeObjects(core, packageId)) {
    const key = joinKey(rootPath, object.path);
    bytes += (await backend.stat(key).catch(() => undefined))?.size ?? 0;
  }
  return bytes;
}

/** A new package holding the files at `path` in the space (a file: that one, by its name; a folder: everything under it). */
async function runImport(core: Core, owner: Owner, request: ImportRequest, ctx: JobContext): Promise<Package> {
  const actor = asActor(owner);
  await checkImport(core, actor, request);
  const source = await tenantSpace(core, owner.tenantId, request.userSpaceID);
  const path = checkSpacePath(request.path, 'path');
  const target = await spaceForUpload(core, owner.tenantId, request.spaceAffinity, 'spaceAffinity');
  const upload = new Upload(core, target, owner.userId);
  const exact = path === '' ? undefined : await source.backend.stat(path).catch((err: unknown) => Promise.reject(asClientError(err)));
  let bytes = 0;
  try {
    try {
      await eachLimited(source.backend.list(path), CONCURRENCY, async (entry) => {
        ctx.checkpoint();
        const name = exact ? entry.key.slice(entry.key.lastIndexOf('/') + 1) : path === '' ? entry.key : entry.key.slice(path.length + 1);
        await upload.add(name, await source.backend.get(entry.key), `file '${entry.key}'`);
        bytes += entry.size;
        ctx.progress(upload.count, upload.count, `imported '${entry.key}'`);
        ctx.stats({ files: upload.count, bytes });
      });
    } catch (err) {
      throw asClientError(err);
    }
    if (upload.count === 0 && path !== '') throw notFound(`no file at '${path}' in user space ${source.id}`);
    ctx.checkpoint();
    let created: Package | undefined;
    await upload.commit(async (trx) => {
      created = await insertPackage(trx, request.bucketID, request.name);
      return created.packageID;
    });
    return created!;
  } finally {
    upload.release();
  }
}

/**
 * Writes every object of the package to `<rootPath>/<object path>` in the space (each file
 * atomically, its modification time the object's update time), never into a `.yunji` folder. Files
 * that fail do not stop the others; they are the job's errors, and the job fails naming them. The
 * tenant's quota refusing a file stops the export, which fails with that 507; the files written
 * before it stay, counted.
 */
async function runExport(core: Core, owner: Owner, request: ExportRequest, ctx: JobContext): Promise<{ written: number }> {
  await checkExport(core, asActor(owner), request);
  const target = await tenantSpace(core, owner.tenantId, request.userSpaceID);
  const budget = await LocalBytesBudget.forOperation(core, owner.tenantId);
  const files = filesBackendOf(target, budget);
  const rootPath = checkSpacePath(request.rootPath, 'rootPath');
  const { n } = await core.db
    .selectFrom('objects')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('package_id', '=', request.packageID)
    .where('redundancy', '!=', 'multipartUpload')
    .executeTakeFirstOrThrow();
  const total = Number(n);
  const spaces = new Map<number, SpaceHandle>();
  const failures: string[] = [];
  let written = 0;
  let bytes = 0;
  try {
    await eachLimited(completeObjects(core, request.packageID), CONCURRENCY, async (object) => {
      ctx.checkpoint();
      try {
        let space = spaces.get(object.space_id);
        if (!space) spaces.set(object.space_id, (space = await spaceById(core, object.space_id)));
        const key = joinKey(rootPath, object.path);
        assertOutsideReserved(key);
        const content = await storeOf(space).read(object.hash);
        await files.put(key, content, { mtimeMs: object.updated_at, size: object.size });
        written++;
        bytes += object.size;
      } catch (err) {
        if (err instanceof AppError && err.kind === 'insufficient_storage') throw err;
        failures.push(`'${object.path}': ${(err as Error).message}`);
        ctx.error((err as Error).message, object.path);
      }
      ctx.progress(written + failures.length, total, `wrote '${object.path}'`);
      ctx.stats({ written, failed: failures.length, bytes });
    });
  } finally {
    await budget.release();
  }
  if (failures.length > 0) {
    throw backendFailed(
      `wrote ${written} of ${written + failures.length} objects to user space ${target.id}; failed: ${failures.slice(0, 5).join('; ')}${failures.length > 5 ? ` and ${failures.length - 5} more` : ''}`,
    );
  }
  return { written };
}

export const packageFromSpace = defineAction(ImportParams, {
  name: 'package_from_space',
  family: 'job',
  // As `createPackage`: a member, with a space and a bucket of the tenant.
  direct: { role: 'member', check: checkImport },
  maxAttempts: 3,
  describe: (p) => `Import '${p.path}' of user space ${p.userSpaceID} into package '${p.name}' of bucket ${p.bucketID}`,
  run: (ctx) => runImport(ctx.core, ownerOf(ctx.job), ctx.params, ctx),
});

export const packageToSpace = defineAction(ExportParams, {
  name: 'package_to_space',
  family: 'job',
  // As `downloadPackage`: a member, with a space and a package of the tenant.
  direct: { role: 'member', check: checkExport },
  maxAttempts: 3,
  describe: (p) => `Write package ${p.packageID} under '${p.rootPath}' of user space ${p.userSpaceID}`,
  run: (ctx) => runExport(ctx.core, ownerOf(ctx.job), ctx.params, ctx),
});

/**
 * Runs a transfer as a job and answers when it has finished, as `createPackage` and
 * `downloadPackage` do on the wire. The job is visible (and cancellable) in the job surfaces
 * meanwhile; a client that goes away does not stop it.
 */
async function runAsJob(
  core: Core,
  actor: Actor,
  action: string,
  params: ImportRequest | ExportRequest,
  signal?: AbortSignal,
): Promise<unknown> {
  const job = await submitJob(core, { tenantId: actor.tenantId, action, params, createdBy: actor.userId, trigger: 'manual' });
  const done = await waitForJob(core, job.id, signal);
  if (done.status === 'completed') return done.result;
  throw failureOf(done);
}

export async function importPackage(core: Core, actor: Actor, request: ImportRequest, signal?: AbortSignal): Promise<Package> {
  await checkImport(core, actor, request);
  const params = {
    userSpaceID: request.userSpaceID,
    path: request.path,
    bucketID: request.bucketID,
    name: request.name,
    spaceAffinity: request.spaceAffinity ?? 0,
  };
  return (await runAsJob(core, actor, packageFromSpace.name, params, signal)) as Package;
}

export async function exportPackage(core: Core, actor: Actor, request: ExportRequest, signal?: AbortSignal): Promise<{ written: number }> {
  await checkExport(core, actor, request);
  const params = { userSpaceID: request.userSpaceID, packageID: request.packageID, rootPath: request.rootPath };
  return (await runAsJob(core, actor, packageToSpace.name, params, signal)) as { written: number };
}

/** The package's finished objects in path order, a page at a time (unfinished multipart uploads have no bytes yet). */
async function* completeObjects(core: Core, packageId: number) {
  let after = '';
  for (;;) {
    const page = await objectsOfPackage(core.db, packageId)
      .where('o.path', '>', after)
      .where('o.redundancy', '!=', 'multipartUpload')
      .orderBy('o.path')
      .limit(500)
      .execute();
    yield* page;
    if (page.length < 500) return;
    after = page[page.length - 1]!.path;
  }
}
