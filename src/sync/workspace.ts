import { Type, type Static } from '@sinclair/typebox';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import type { Db } from '../db/index.ts';
import { badRequest, notFound } from '../lib/errors.ts';
import { defineAction, PermanentJobError } from '../jobs/actions.ts';
import { activeJobByKey, JobKeyConflict, submitJob } from '../jobs/store.ts';
import { joinKey } from '../backends/backend.ts';
import { checkSpacePath } from '../spaces/spacePaths.ts';
import { asClientError } from '../backends/backendError.ts';
import { tenantSpace } from '../spaces/spaces.ts';
import { filesBackendOf } from '../storage/localFiles.ts';
import { LocalBytesBudget } from '../storage/quota.ts';
import { StringEnum } from '../lib/schema.ts';
import { iso } from '../lib/time.ts';
import { syncTree } from './engine.ts';
import { BackendTree } from './tree.ts';
import { KnownAlike, matchingPairs, snapshotCursor, twoWaySync, unchangedSince, type SnapshotEntry } from './twoWay.ts';
import type { TreeEntry } from './tree.ts';

/**
 * Workspace sync (`/api/sync/performSync`): a tenant's local folder and cloud folder (each a folder
 * of a user space) kept equal, two ways by default, or one way by force. Each run is a
 * `workspace_sync` job, at most one per tenant at a time.
 */
const Side = Type.Object(
  {
    user_space_id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    path: Type.String({ maxLength: 1024, description: "Relative to the space's root" }),
  },
  { additionalProperties: false },
);
export const WorkspaceProfile = Type.Object({ local: Side, cloud: Side }, { additionalProperties: false, title: 'WorkspaceProfile' });
export type WorkspaceProfile = Static<typeof WorkspaceProfile>;

export const PUSH_MODES = ['', 'force-push', 'force-pull'] as const;
export const PerformSyncBody = Type.Object(
  {
    app: Type.String({ minLength: 1, maxLength: 255, description: 'The client asking (an id of its own)' }),
    force: Type.Optional(Type.Boolean()),
    pushMode: Type.Optional(StringEnum(PUSH_MODES)),
    pushOnly: Type.Optional(Type.Boolean({ description: 'Deprecated: true means pushMode "force-push"' })),
    cloudName: Type.Optional(
      Type.String({ maxLength: 255, description: 'A folder of the cloud side; a new one resets the last sync (a full merge into it)' }),
    ),
  },
  { additionalProperties: false, title: 'PerformSyncRequest' },
);
export type PerformSyncBody = Static<typeof PerformSyncBody>;

const WorkspaceSyncParams = Type.Object(
  { app: Type.String(), pushMode: StringEnum(PUSH_MODES), force: Type.Boolean() },
  { additionalProperties: false },
);

const keyOf = (tenantId: number) => `workspaceSync:${tenantId}`;

async function profileRow(core: Core, tenantId: number) {
  return core.db.selectFrom('workspaces').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
}

export async function getWorkspace(core: Core, actor: Actor): Promise<WorkspaceProfile & { cloud_name: string; updated_at: string }> {
  const row = await profileRow(core, actor.tenantId);
  if (!row) throw notFound('workspace profile (set it with PUT /api/sync/workspace)');
  return {
    local: { user_space_id: row.local_space_id, path: row.local_path },
    cloud: { user_space_id: row.cloud_space_id, path: row.cloud_path },
    cloud_name: row.cloud_name,
    updated_at: iso(row.updated_at),
  };
}

const overlaps = (a: string, b: string) => a === '' || b === '' || a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);

/** Sets the profile; a change of either side forgets the last sync (the next run merges, deleting nothing). */
export async function putWorkspace(core: Core, actor: Actor, body: WorkspaceProfile) {
  requireRole(actor, 'admin');
  const localPath = checkSpacePath(body.local.path, 'local.path');
  const cloudPath = checkSpacePath(body.cloud.path, 'cloud.path');
  await tenantSpace(core, actor.tenantId, body.local.user_space_id);
  await tenantSpace(core, actor.tenantId, body.cloud.user_space_id);
  if (body.local.user_space_id === body.cloud.user_space_id && overlaps(localPath, cloudPath)) {
    throw badRequest('the local and cloud folders overlap in the same user space', 'cloud.path');
  }
  const now = Date.now();
  const before = await profileRow(core, actor.tenantId);
  const same =
    before &&
    before.local_space_id === body.local.user_space_id &&
    before.local_path === localPath &&
    before.cloud_space_id === body.cloud.user_space_id &&
    before.cloud_path === cloudPath;
  await core.db.transaction().execute(async (trx) => {
    const values = {
      local_space_id: body.local.user_space_id,
      local_path: localPath,
      cloud_space_id: body.cloud.user_space_id,
      cloud_path: cloudPath,
      updated_at: now,
    };
    await trx
      .insertInto('workspaces')
      .values({ tenant_id: actor.tenantId, ...values, last_synced_at: null, last_error: null })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet(values))
      .execute();
    // Other folders: the last sync and the cloud folder name chosen for the old ones no longer apply.
    if (!same) {
      await forget(trx, actor.tenantId);
      await trx.updateTable('workspaces').set({ cloud_name: '' }).where('tenant_id', '=', actor.tenantId).execute();
    }
  });
  return getWorkspace(core, actor);
}

async function forget(db: Db, tenantId: number): Promise<void> {
  await db.deleteFrom('workspace_files').where('tenant_id', '=', tenantId).execute();
  await db.updateTable('workspaces').set({ last_synced_at: null }).where('tenant_id', '=', tenantId).execute();
}

export class SyncInProgress extends Error {
  override name = 'SyncInProgress';
}

/** Starts a run in the background; a new `cloudName` first forgets the last sync. */
export async function performSync(
  core: Core,
  actor: Actor,
  body: PerformSyncBody,
): Promise<{ current: number; total: number; info: string; msg: string }> {
  requireRole(actor, 'admin');
  const row = await profileRow(core, actor.tenantId);
  if (!row) throw badRequest('this tenant has no workspace profile yet: PUT /api/sync/workspace {local, cloud} first');
  const pushMode = body.pushMode ?? (body.pushOnly ? 'force-push' : '');
  if (await activeJobByKey(core, keyOf(actor.tenantId))) throw new SyncInProgress();
  if (body.cloudName !== undefined && body.cloudName !== row.cloud_name) {
    const cloudName = body.cloudName === '' ? '' : checkSpacePath(body.cloudName, 'cloudName');
    await core.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('workspaces')
        .set({ cloud_name: cloudName, updated_at: Date.now() })
        .where('tenant_id', '=', actor.tenantId)
        .execute();
      await forget(trx, actor.tenantId);
    });
  }
  try {
    await submitJob(core, {
      tenantId: actor.tenantId,
      action: workspaceSync.name,
      params: { app: body.app, pushMode, force: body.force ?? false },
      trigger: 'manual',
      referenceId: `app:${body.app}`,
      concurrencyKey: keyOf(actor.tenantId),
      createdBy: actor.userId,
    });
  } catch (err) {
    if (err instanceof JobKeyConflict) throw new SyncInProgress();
    throw err;
  }
  return { current: 0, total: 0, info: 'Preparing to sync…', msg: '' };
}

export async function syncInfo(core: Core, actor: Actor): Promise<{ synced: number; stat: string; syncing: boolean; lastError: string }> {
  // The job first: a run records its outcome before its job ends, so a run seen ended has its outcome in the row read after.
  const syncing = (await activeJobByKey(core, keyOf(actor.tenantId))) !== undefined;
  const row = await profileRow(core, actor.tenantId);
  return { synced: row?.last_synced_at ?? 0, stat: row?.stat ?? '', syncing, lastError: row?.last_error ?? '' };
}

async function* snapshotOf(core: Core, tenantId: number): AsyncGenerator<SnapshotEntry> {
  let after: string | undefined;
  for (;;) {
    let q = core.db.selectFrom('workspace_files').select(['path', 'size', 'local_mtime', 'cloud_mtime']).where('tenant_id', '=', tenantId);
    if (after !== undefined) q = q.where('path', '>', after);
    const page = await q.orderBy('path').limit(1000).execute();
    for (const r of page) yield { path: r.path, size: r.size, localMtime: r.local_mtime, cloudMtime: r.cloud_mtime };
    if (page.length < 1000) return;
    after = page[page.length - 1]!.path;
  }
}

/**
 * Records what both sides now hold alike. The pairs come from listing both sides (a network
 * listing for an S3 side), so they are written in batches outside any transaction, into
 * `workspace_files_next`; one transaction that only talks to the database then puts them in
 * place. A run stopped half way leaves the last snapshot as it was.
 */
async function saveSnapshot(
  core: Core,
  tenantId: number,
  pairs: AsyncIterable<SnapshotEntry>,
  stat: string,
  syncedAt: number,
): Promise<number> {
  // What an earlier run stopped half way staged.
  await core.db.deleteFrom('workspace_files_next').where('tenant_id', '=', tenantId).execute();
  let batch: SnapshotEntry[] = [];
  let count = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = batch.map((e) => ({
      tenant_id: tenantId,
      path: e.path,
      size: e.size,
      local_mtime: Math.round(e.localMtime),
      cloud_mtime: Math.round(e.cloudMtime),
    }));
    batch = [];
    await core.db.insertInto('workspace_files_next').values(rows).execute();
    count += rows.length;
  };
  for await (const e of pairs) {
    batch.push(e);
    if (batch.length >= 500) await flush();
  }
  await flush();
  await core.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('workspace_files').where('tenant_id', '=', tenantId).execute();
    await trx
      .insertInto('workspace_files')
      .columns(['tenant_id', 'path', 'size', 'local_mtime', 'cloud_mtime'])
      .expression((eb) =>
        eb
          .selectFrom('workspace_files_next')
          .select(['tenant_id', 'path', 'size', 'local_mtime', 'cloud_mtime'])
          .where('tenant_id', '=', tenantId),
      )
      .execute();
    await trx.deleteFrom('workspace_files_next').where('tenant_id', '=', tenantId).execute();
    await trx
      .updateTable('workspaces')
      .set({ last_synced_at: syncedAt, stat, last_error: null })
      .where('tenant_id', '=', tenantId)
      .execute();
  });
  return count;
}

export const workspaceSync = defineAction(WorkspaceSyncParams, {
  name: 'workspace_sync',
  family: 'sync',
  // Only through performSync: an admin, the profile, and one run per tenant at a time.
  direct: false,
  maxAttempts: 2,
  describe: (p) => `Workspace sync for '${p.app}'${p.pushMode ? ` (${p.pushMode})` : ' (two-way)'}`,
  async run(ctx) {
    const tenantId = ctx.job.tenantId;
    const row = await profileRow(ctx.core, tenantId);
    if (!row) throw new PermanentJobError('the workspace profile was removed');
    const startedAt = Date.now();
    const budget = await LocalBytesBudget.forOperation(ctx.core, tenantId);
    try {
      const localSpace = await tenantSpace(ctx.core, tenantId, row.local_space_id);
      const cloudSpace = await tenantSpace(ctx.core, tenantId, row.cloud_space_id);
      const local = new BackendTree(filesBackendOf(localSpace, budget), row.local_path);
      const cloud = new BackendTree(filesBackendOf(cloudSpace, budget), joinKey(row.cloud_path, row.cloud_name));
      let stat: string;
      let failed: number;
      const known = new KnownAlike();
      if (ctx.params.pushMode === '') {
        const s = await twoWaySync(local, cloud, snapshotOf(ctx.core, tenantId), startedAt, ctx, known);
        stat = `uploaded ${s.uploaded}, downloaded ${s.downloaded}, deleted ${s.deletedLocal} locally and ${s.deletedCloud} in the cloud, ${s.conflicts} conflicts kept both versions, ${s.skipped} unchanged`;
        failed = s.failed;
      } else {
        const push = ctx.params.pushMode === 'force-push';
        const [from, to] = push ? [local, cloud] : [cloud, local];
        // Nobody chose to compare by size and time here: a pair is skipped unread only when both
        // sides are as the last snapshot had them alike, and otherwise compared by content.
        const priorOf = snapshotCursor(snapshotOf(ctx.core, tenantId));
        const sides = (s: TreeEntry, d: TreeEntry) => (push ? { l: s, c: d } : { l: d, c: s });
        const s = await syncTree(
          from,
          to,
          {
            mode: { type: 'Diff', includeSize: false, includeModTime: false },
            filters: [],
            options: { delete: true, noEmptyDirectories: true },
            unchanged: async (src, dst) => {
              const { l, c } = sides(src, dst);
              return unchangedSince(await priorOf(l.path), l, c);
            },
            alike: (path, size, srcMtime, dstMtime) =>
              push ? known.add(path, size, srcMtime, dstMtime) : known.add(path, size, dstMtime, srcMtime),
          },
          ctx,
        );
        stat = `${ctx.params.pushMode}: copied ${s.copied + s.updated}, deleted ${s.deleted}, ${s.skipped} unchanged`;
        failed = s.failed;
      }
      if (failed > 0) throw new PermanentJobError(`${failed} files failed (see the errors); ${stat}`);
      const recorded = await saveSnapshot(
        ctx.core,
        tenantId,
        matchingPairs(local, cloud, snapshotOf(ctx.core, tenantId), known, ctx.signal),
        stat,
        Date.now(),
      );
      ctx.log(`${stat}; ${recorded} files in sync`);
      return { stat, files: recorded };
    } catch (err) {
      const failure = asClientError(err);
      if (!ctx.signal.aborted) {
        await ctx.core.db
          .updateTable('workspaces')
          .set({ last_error: (failure as Error).message })
          .where('tenant_id', '=', tenantId)
          .execute();
      }
      throw failure;
    } finally {
      await budget.release();
    }
  },
});
