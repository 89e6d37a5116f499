import { Type, type Static } from '@sinclair/typebox';
import type { Core } from '../jobs/core.ts';
import { badRequest, conflict, notFound } from '../lib/errors.ts';
import { defineAction, PermanentJobError } from '../jobs/actions.ts';
import { checkSpacePath } from '../spaces/spacePaths.ts';
import { asClientError } from '../backends/backendError.ts';
import { tenantSpace } from '../spaces/spaces.ts';
import { filesBackendOf } from '../storage/localFiles.ts';
import { LocalBytesBudget } from '../storage/quota.ts';
import { Id } from '../lib/schema.ts';
import { MaxDeleteExceeded, syncTree } from './engine.ts';
import { compileFilters } from './filters.ts';
import { BackendTree } from './tree.ts';
import { emptyStats, SyncFilter, SyncMode, SyncOptions, type SyncStats } from './models.ts';

/** A `space_sync` job: one source folder of a user space into one or more destination folders. */
export const SpaceSyncParams = Type.Object(
  {
    taskID: Type.Union([Id, Type.Null()], { default: null }),
    srcUserSpaceID: Id,
    srcPath: Type.String(),
    dests: Type.Array(Type.Object({ userSpaceID: Id, path: Type.String() }, { additionalProperties: false }), {
      minItems: 1,
      maxItems: 16,
    }),
    mode: SyncMode,
    filters: Type.Array(SyncFilter, { default: [] }),
    options: SyncOptions,
    /** A retry of only these files (paths relative to the source folder). */
    only: Type.Optional(Type.Array(Type.String(), { maxItems: 1000 })),
  },
  { additionalProperties: false },
);
export type SpaceSyncParams = Static<typeof SpaceSyncParams>;

export interface SpaceSyncResult extends SyncStats {
  destinations: ({ userSpaceID: number; path: string } & SyncStats)[];
}

/** The concurrency key of a space sync task's runs: they never overlap. */
export const taskKeyOf = (taskId: number) => `spaceSyncTask:${taskId}`;

const within = (inner: string, outer: string) => outer === '' || inner === outer || inner.startsWith(`${outer}/`);

/**
 * What a space sync may touch: each path stays inside its space (400), the source and every
 * destination are user spaces of the tenant (404), no destination overlaps the source in the same
 * space (400: it would copy its own copies), and the filters compile (400). `destField` names a
 * destination's path in messages.
 */
export async function checkSpaceSync(
  core: Core,
  tenantId: number,
  p: Pick<SpaceSyncParams, 'srcUserSpaceID' | 'srcPath' | 'dests' | 'filters'>,
  destField = (i: number) => `dests[${i}].path`,
): Promise<void> {
  const srcPath = checkSpacePath(p.srcPath, 'srcPath');
  const destPaths = p.dests.map((d, i) => checkSpacePath(d.path, destField(i)));
  await tenantSpace(core, tenantId, p.srcUserSpaceID);
  for (const [i, d] of p.dests.entries()) {
    await tenantSpace(core, tenantId, d.userSpaceID);
    if (d.userSpaceID === p.srcUserSpaceID && (within(destPaths[i]!, srcPath) || within(srcPath, destPaths[i]!))) {
      throw badRequest(`${destField(i)} '${destPaths[i]}' overlaps srcPath '${srcPath}' in the same user space`, destField(i));
    }
  }
  compileFilters(p.filters);
}

const failedPaths = (job: { errors: { item?: string }[] }) => [
  ...new Set(job.errors.flatMap((e) => (e.item === undefined ? [] : [e.item]))),
];

export const spaceSync = defineAction(SpaceSyncParams, {
  name: 'space_sync',
  family: 'sync',
  // As creating or running a space sync task: a member, with spaces of the tenant; a run of a task
  // (one that names its taskID) holds the task's key and needs the task to be live.
  direct: {
    role: 'member',
    async check(core, actor, p) {
      await checkSpaceSync(core, actor.tenantId, p);
      if (p.taskID === null) return;
      const task = await core.db
        .selectFrom('sync_tasks')
        .select('cancelled')
        .where('id', '=', p.taskID)
        .where('tenant_id', '=', actor.tenantId)
        .executeTakeFirst();
      if (!task) throw notFound(`sync task ${p.taskID}`);
      if (task.cancelled) throw conflict(`sync task ${p.taskID} was cancelled; create a new one`);
    },
    concurrencyKey: (_tenantId, p) => (p.taskID === null ? null : taskKeyOf(p.taskID)),
  },
  maxAttempts: 3,
  describe: (p) =>
    `Sync '${p.srcPath}' of user space ${p.srcUserSpaceID} to ${p.dests.map((d) => `'${d.path}' of user space ${d.userSpaceID}`).join(', ')}${p.options.dryRun ? ' (dry run)' : ''}${p.only ? ` (${p.only.length} files that failed)` : ''}`,
  extraButtons: [
    {
      button: { name: 'retry_failed', label: 'Retry the failed files', emoji: '🩹' },
      offered: (job) => job.status === 'failed' && failedPaths(job).length > 0,
      params: (job) => ({ ...(job.params as SpaceSyncParams), only: failedPaths(job) }),
    },
    {
      button: { name: 'dry_run', label: 'Dry run', emoji: '🔍' },
      offered: () => true,
      params: (job) => {
        const { only: _only, ...params } = job.params as SpaceSyncParams;
        return { ...params, options: { ...params.options, dryRun: true } };
      },
    },
  ],
  async run(ctx) {
    const p = ctx.params;
    const tenantId = ctx.job.tenantId;
    const source = await tenantSpace(ctx.core, tenantId, p.srcUserSpaceID);
    const srcRoot = checkSpacePath(p.srcPath, 'srcPath');
    const totals = emptyStats();
    const destinations: SpaceSyncResult['destinations'] = [];
    const only = p.only ? new Set(p.only) : undefined;
    const budget = await LocalBytesBudget.forOperation(ctx.core, tenantId);
    try {
      for (const d of p.dests) {
        const target = await tenantSpace(ctx.core, tenantId, d.userSpaceID);
        ctx.log(`syncing '${p.srcPath}' of user space ${source.id} to '${d.path}' of user space ${target.id}`);
        try {
          const stats = await syncTree(
            new BackendTree(source.backend, srcRoot),
            new BackendTree(filesBackendOf(target, budget), checkSpacePath(d.path, 'destPathes')),
            { mode: p.mode, filters: p.filters, options: p.options, only },
            ctx,
            totals,
          );
          destinations.push({ userSpaceID: d.userSpaceID, path: d.path, ...stats });
        } catch (err) {
          if (err instanceof MaxDeleteExceeded) throw new PermanentJobError(err.message);
          throw asClientError(err);
        }
      }
    } finally {
      await budget.release();
    }
    ctx.log(
      `checked ${totals.checked}, copied ${totals.copied}, updated ${totals.updated}, deleted ${totals.deleted}, skipped ${totals.skipped}, failed ${totals.failed}`,
    );
    // Files that failed are the job's errors; running the whole sync again would not fix them by itself.
    if (totals.failed > 0)
      throw new PermanentJobError(`${totals.failed} of ${totals.checked} files failed (see the errors; 'retry_failed' runs just those)`);
    return { ...totals, destinations } satisfies SpaceSyncResult;
  },
});
