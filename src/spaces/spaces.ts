import { randomUUID } from 'node:crypto';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';
import { prepared, preparedWrite } from '../db/prepared.ts';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { inGroupCommit } from '../db/groupCommit.ts';
import { backendFailed, badRequest, conflict, notFound } from '../lib/errors.ts';
import { checkOutboundUrl, outboundPolicy } from '../lib/outbound.ts';
import { joinKey, type Backend } from '../backends/backend.ts';
import { asClientError, BackendError } from '../backends/backendError.ts';
import type { CreateUserSpaceBody, S3Credential, StorageConfig, TestUserSpaceBody, UpdateUserSpaceBody, UserSpace } from './models.ts';
import { assertNotForeign, checkLocalRoot, claimLocalRoot } from './roots.ts';
import { shardGuard } from './shardGuard.ts';
import { ShardStore, type ShardQuota } from '../backends/shardStore.ts';
import { checkCredential, checkStorage, isS3, maskCredential, openBackend, s3Network } from './storageConfig.ts';
import { checkSpacePath } from './spacePaths.ts';

/**
 * User spaces: where a tenant's bytes live. Every tenant has a default local space under the data
 * dir (created the first time it is needed); others are added through the userSpace API. A space's
 * backend is opened once per revision and reused.
 */
interface SpaceRow {
  id: number;
  tenant_id: number;
  name: string;
  storage_json: string;
  credential_sealed: string | null;
  shard_max_size: number | null;
  working_dir: string;
  features_json: string;
  is_default: number;
  revision: number;
}

export interface SpaceHandle {
  id: number;
  tenantId: number;
  name: string;
  revision: number;
  storage: StorageConfig;
  workingDir: string;
  backend: Backend;
  /** null when the space keeps no object bytes (`shardStore: null`). */
  store: ShardStore | null;
}

const SPACE_COLUMNS = [
  'id',
  'tenant_id',
  'name',
  'storage_json',
  'credential_sealed',
  'shard_max_size',
  'working_dir',
  'features_json',
  'is_default',
  'revision',
] as const;

const handles = new Map<number, SpaceHandle>();

const spaceUsage = prepared((db: Db, spaceId: number) =>
  db.selectFrom('user_spaces').select(['used_bytes', 'shard_max_size']).where('id', '=', spaceId),
);
const spaceRowById = prepared((db: Db, spaceId: number) => db.selectFrom('user_spaces').select(SPACE_COLUMNS).where('id', '=', spaceId));
const defaultSpaceOf = prepared((db: Db, tenantId: number) =>
  db.selectFrom('user_spaces').select(SPACE_COLUMNS).where('tenant_id', '=', tenantId).where('is_default', '=', 1),
);

/** Adds `bytes` to a space's count unless that passes its cap (none, or 0, is no cap). */
const claimBytes = preparedWrite((db: Db, spaceId: number, bytes: number) =>
  db
    .updateTable('user_spaces')
    .set({ used_bytes: sql`used_bytes + ${bytes}` })
    .where('id', '=', spaceId)
    .where((eb) =>
      eb.or([
        eb('shard_max_size', 'is', null),
        eb('shard_max_size', '=', 0),
        eb(sql`used_bytes + ${bytes}`, '<=', eb.ref('shard_max_size')),
      ]),
    ),
);

/**
 * The byte count of a space's shard store lives in its row; a cap is enforced as shards are added.
 * `cap` is the row's, as the handle was opened with (changing it bumps the revision, which opens a
 * new handle), so a space without one answers its room without a query.
 */
function quotaOf(core: Core, spaceId: number, cap: number): ShardQuota {
  return {
    async room() {
      if (!cap) return Infinity;
      const [row] = await spaceUsage(core.db, spaceId);
      if (!row || !row.shard_max_size) return Infinity;
      return Math.max(0, row.shard_max_size - row.used_bytes);
    },
    claim: cap ? (bytes) => claimAgainstCap(core, spaceId, bytes) : counterOf(core, spaceId),
    async release(bytes) {
      await core.db
        .updateTable('user_spaces')
        .set({ used_bytes: sql`case when used_bytes > ${bytes} then used_bytes - ${bytes} else 0 end` })
        .where('id', '=', spaceId)
        .execute();
    },
  };
}

// Counted in a transaction shared with concurrent uploads' (a commit costs more than the update).
async function claimAgainstCap(core: Core, spaceId: number, bytes: number): Promise<boolean> {
  const result = await inGroupCommit(core.db, (trx) => claimBytes(trx, spaceId, bytes));
  return Number(result.numAffectedRows) > 0;
}

/**
 * Counting for a space without a cap, where a claim cannot be refused: claims made before the
 * count is written are added up and written as one update.
 */
function counterOf(core: Core, spaceId: number): (bytes: number) => Promise<boolean> {
  let pending = 0;
  let writing: Promise<boolean> | undefined;
  return (bytes) => {
    pending += bytes;
    writing ??= (() => {
      let taken: number | undefined;
      return inGroupCommit(core.db, async (trx) => {
        // Taken once: a group that failed runs its items again, and this sum must not change then.
        if (taken === undefined) {
          taken = pending;
          pending = 0;
          writing = undefined;
        }
        await claimBytes(trx, spaceId, taken);
        return true;
      });
    })();
    return writing;
  };
}

function credentialOf(core: Core, row: SpaceRow): S3Credential | null {
  if (!row.credential_sealed) return null;
  let plain: string;
  try {
    plain = core.sealer.open(row.credential_sealed);
  } catch (err) {
    throw backendFailed(`the credential of user space ${row.id} cannot be opened: ${(err as Error).message}`);
  }
  return JSON.parse(plain) as S3Credential;
}

function handleOf(core: Core, row: SpaceRow): SpaceHandle {
  const cached = handles.get(row.id);
  if (cached && cached.revision === row.revision) return cached;
  cached?.backend.close?.();
  const storage = JSON.parse(row.storage_json) as StorageConfig;
  const backend = openBackend(storage, credentialOf(core, row), s3Network(core.config), core.db);
  const handle: SpaceHandle = {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    revision: row.revision,
    storage,
    workingDir: row.working_dir,
    backend,
    store:
      row.shard_max_size === null
        ? null
        : new ShardStore(backend, row.working_dir, quotaOf(core, row.id, row.shard_max_size), shardGuard(core, row.id)),
  };
  handles.set(row.id, handle);
  return handle;
}

function toUserSpace(core: Core, row: SpaceRow): UserSpace {
  return {
    userSpaceID: row.id,
    name: row.name,
    storage: JSON.parse(row.storage_json) as UserSpace['storage'],
    credential: maskCredential(credentialOf(core, row)),
    shardStore: row.shard_max_size === null ? null : { maxSize: row.shard_max_size },
    features: JSON.parse(row.features_json) as UserSpace['features'],
    workingDir: row.working_dir,
    revision: row.revision,
  };
}

async function spaceRow(core: Core, spaceId: number): Promise<SpaceRow | undefined> {
  return (await spaceRowById(core.db, spaceId))[0];
}

/** The space, if it is the tenant's (another tenant's space does not exist for them). */
async function ownRow(core: Core, tenantId: number, spaceId: number): Promise<SpaceRow> {
  const row = await spaceRow(core, spaceId);
  if (!row || row.tenant_id !== tenantId) throw notFound(`user space ${spaceId}`);
  return row;
}

export async function defaultSpace(core: Core, tenantId: number): Promise<SpaceHandle> {
  const [existing] = await defaultSpaceOf(core.db, tenantId);
  if (existing) return handleOf(core, existing);
  const root = join(core.config.dataDir, 'spaces', `tenant-${tenantId}`);
  const now = Date.now();
  try {
    const row = await core.db
      .insertInto('user_spaces')
      .values({
        tenant_id: tenantId,
        name: 'local',
        storage_json: JSON.stringify({ type: 'local', root }),
        credential_sealed: null,
        shard_max_size: 0,
        working_dir: '',
        is_default: 1,
        revision: 1,
        created_at: now,
        updated_at: now,
      })
      .returning(SPACE_COLUMNS)
      .executeTakeFirstOrThrow();
    return handleOf(core, row);
  } catch (err) {
    // Another request created it first.
    if (isUniqueViolation(err)) return defaultSpace(core, tenantId);
    throw err;
  }
}

/** Any space by id (for bytes an object already names). */
export async function spaceById(core: Core, spaceId: number): Promise<SpaceHandle> {
  const row = await spaceRow(core, spaceId);
  if (!row) throw notFound(`user space ${spaceId}`);
  return handleOf(core, row);
}

/** A space of the tenant's, by id. */
export async function tenantSpace(core: Core, tenantId: number, spaceId: number): Promise<SpaceHandle> {
  return handleOf(core, await ownRow(core, tenantId, spaceId));
}

/** Where new bytes of the tenant go: the `affinity` space if given (it must keep object bytes), else the default. */
export async function spaceForUpload(
  core: Core,
  tenantId: number,
  affinity: number | undefined,
  field = 'affinity',
): Promise<SpaceHandle & { store: ShardStore }> {
  const space = affinity ? await tenantSpace(core, tenantId, affinity) : await defaultSpace(core, tenantId);
  if (!space.store) throw badRequest(`user space ${space.id} keeps no object bytes (its shardStore is null)`, field);
  return space as SpaceHandle & { store: ShardStore };
}

/** `storage` and `credential` checked for their type; a local root also against the allow-list and Yunji's own storage, an S3 endpoint against the outbound guard. */
async function checkedStorage(core: Core, storageInput: unknown, credentialInput: unknown) {
  const storage = checkStorage(storageInput);
  const credential = checkCredential(storage, credentialInput);
  if (!isS3(storage)) storage.root = await checkLocalRoot(core, storage.root);
  else if (storage.endpoint) await checkOutboundUrl(outboundPolicy(core.config.outboundAllow), storage.endpoint, 'storage.endpoint');
  return { storage, credential };
}

export async function createSpace(core: Core, actor: Actor, body: CreateUserSpaceBody): Promise<UserSpace> {
  requireRole(actor, 'admin');
  const { storage, credential } = await checkedStorage(core, body.storage, body.credential);
  const workingDir = checkSpacePath(body.workingDir ?? '', 'workingDir');
  const now = Date.now();
  try {
    const row = await core.db.transaction().execute(async (trx) => {
      if (!isS3(storage)) await claimLocalRoot(trx, core, actor.tenantId, storage.root);
      return trx
        .insertInto('user_spaces')
        .values({
          tenant_id: actor.tenantId,
          name: body.name,
          storage_json: JSON.stringify(storage),
          credential_sealed: credential ? core.sealer.seal(JSON.stringify(credential)) : null,
          shard_max_size: body.shardStore === null ? null : (body.shardStore?.maxSize ?? 0),
          features_json: JSON.stringify(body.features ?? []),
          working_dir: workingDir,
          is_default: 0,
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .returning(SPACE_COLUMNS)
        .executeTakeFirstOrThrow();
    });
    return toUserSpace(core, row);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`a user space named '${body.name}' already exists`);
    throw err;
  }
}

/**
 * Whether objects or unfinished uploads still keep bytes in a space: asked of the storage layer,
 * which owns them (storage/spaceUse.ts).
 */
export type HoldsBytes = (spaceId: number) => Promise<boolean>;

export async function updateSpace(core: Core, actor: Actor, body: UpdateUserSpaceBody, holdsBytes: HoldsBytes): Promise<UserSpace> {
  requireRole(actor, 'admin');
  const row = await ownRow(core, actor.tenantId, body.userSpaceID);
  const storage = JSON.parse(row.storage_json) as StorageConfig;
  const changes: Partial<SpaceRow> & { updated_at: number } = { updated_at: Date.now() };
  if (body.name !== undefined) changes.name = body.name;
  if (body.credential !== undefined) {
    const credential = checkCredential(storage, body.credential);
    changes.credential_sealed = credential ? core.sealer.seal(JSON.stringify(credential)) : null;
  }
  if (body.shardStore !== undefined) {
    if (body.shardStore === null && row.shard_max_size !== null) {
      if (await holdsBytes(row.id)) throw conflict(`user space ${row.id} still keeps object bytes; its shard store cannot be turned off`);
      if (row.is_default) throw conflict(`user space ${row.id} is the tenant's default; it keeps object bytes`);
    }
    changes.shard_max_size = body.shardStore === null ? null : body.shardStore.maxSize;
  }
  if (body.features !== undefined) changes.features_json = JSON.stringify(body.features);
  try {
    const updated = await core.db
      .updateTable('user_spaces')
      .set({ ...changes, revision: sql`revision + 1` })
      .where('id', '=', row.id)
      .returning(SPACE_COLUMNS)
      .executeTakeFirstOrThrow();
    return toUserSpace(core, updated);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`a user space named '${body.name}' already exists`);
    throw err;
  }
}

/** Deletes a space's configuration (missing: fine, as the spec says); refused while objects keep bytes there. */
export async function deleteSpace(core: Core, actor: Actor, spaceId: number, holdsBytes: HoldsBytes): Promise<void> {
  requireRole(actor, 'admin');
  const row = await spaceRow(core, spaceId);
  if (!row || row.tenant_id !== actor.tenantId) return;
  if (row.is_default) throw conflict(`user space ${spaceId} is the tenant's default space`);
  if (await holdsBytes(spaceId)) throw conflict(`user space ${spaceId} still keeps the bytes of objects; delete or move them first`);
  try {
    await core.db.deleteFrom('user_spaces').where('id', '=', spaceId).execute();
  } catch (err) {
    // An upload committed an object there meanwhile (the foreign key holds).
    if (/foreign key/i.test((err as Error).message)) throw conflict(`user space ${spaceId} still keeps the bytes of objects`);
    throw err;
  }
  handles.get(spaceId)?.backend.close?.();
  handles.delete(spaceId);
}

export async function getSpace(core: Core, actor: Actor, spaceId: number): Promise<UserSpace> {
  requireRole(actor, 'viewer');
  return toUserSpace(core, await ownRow(core, actor.tenantId, spaceId));
}

export async function listSpaces(core: Core, actor: Actor): Promise<UserSpace[]> {
  requireRole(actor, 'viewer');
  const rows = await core.db
    .selectFrom('user_spaces')
    .select(SPACE_COLUMNS)
    .where('tenant_id', '=', actor.tenantId)
    .orderBy('id')
    .execute();
  return rows.map((r) => toUserSpace(core, r));
}

/** Writes a probe file under `workingDir`, reads it back and removes it; the backend's reason when that fails. */
export async function testSpace(core: Core, actor: Actor, body: TestUserSpaceBody): Promise<void> {
  requireRole(actor, 'admin');
  const { storage, credential } = await checkedStorage(core, body.storage, body.credential);
  if (!isS3(storage)) await assertNotForeign(core.db, actor.tenantId, storage.root);
  const workingDir = checkSpacePath(body.workingDir ?? '', 'workingDir');
  const backend = openBackend(storage, credential, s3Network(core.config));
  const key = joinKey(workingDir, `.yunji-probe-${randomUUID()}`);
  const probe = `yunji probe ${new Date().toISOString()}`;
  try {
    await backend.put(key, Readable.from([Buffer.from(probe)]));
    const chunks: Buffer[] = [];
    for await (const chunk of await backend.get(key)) chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).toString() !== probe) throw new BackendError(`${backend.describe()} returned other bytes than were written`);
    await backend.remove(key);
  } catch (err) {
    throw asClientError(err);
  } finally {
    backend.close?.();
  }
}

/**
 * The bytes of the files in the tenant's local spaces, as their listings see them: no `.yunji`
 * folder, no symlink followed. A space whose root is inside another's (or the same) is walked with
 * that one, once.
 */
export async function localFileBytes(core: Core, tenantId: number): Promise<number> {
  const rows = await core.db.selectFrom('user_spaces').select(SPACE_COLUMNS).where('tenant_id', '=', tenantId).execute();
  const locals = rows
    .map((row) => handleOf(core, row))
    .flatMap((space) => (isS3(space.storage) ? [] : [{ space, root: resolve(space.storage.root) }]))
    .sort((a, b) => a.root.length - b.root.length);
  const walked: string[] = [];
  let bytes = 0;
  for (const { space, root } of locals) {
    if (walked.some((outer) => root === outer || root.startsWith(outer.endsWith(sep) ? outer : outer + sep))) continue;
    walked.push(root);
    for await (const entry of space.backend.list('')) bytes += entry.size;
  }
  return bytes;
}

/** Every space of every tenant (for the sweeper), each opened when asked: opening one may fail alone. */
export async function allSpaces(core: Core): Promise<{ id: number; open(): SpaceHandle }[]> {
  const rows = await core.db.selectFrom('user_spaces').select(SPACE_COLUMNS).execute();
  return rows.map((row) => ({ id: row.id, open: () => handleOf(core, row) }));
}

/** Sets a space's byte count to what its shard store was found to hold. */
export async function setSpaceBytes(core: Core, spaceId: number, bytes: number): Promise<void> {
  await core.db.updateTable('user_spaces').set({ used_bytes: bytes }).where('id', '=', spaceId).execute();
}
