import { Type, type Static } from '@sinclair/typebox';
import { defineAction, PermanentJobError } from '../jobs/actions.ts';
import { checkSpacePath } from '../spaces/spacePaths.ts';
import { asClientError, tenantSpace } from '../spaces/spaces.ts';
import { Id } from '../storage/models.ts';
import { MaxDeleteExceeded, syncTree } from './engine.ts';
import { BackendTree } from './tree.ts';
import { emptyStats, SyncFilter, SyncMode, SyncOptions, type SyncStats } from './models.ts';

/** A `space_sync` job: one source folder of a user space into one or more destination folders. */
export const SpaceSyncParams = Type.Object(
  {
    taskID: Type.Union([Id, Type.Null()], { default: null }),
    srcUserSpaceID: Id,
    srcPath: Type.String(),
    dests: Type.Array(Type.Object({ userSpaceID: Id, path: Type.String() }, { additionalProperties: false }), { minItems: 1, maxItems: 16 }),
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

const failedPaths = (job: { errors: { item?: string }[] }) => [...new Set(job.errors.flatMap((e) => (e.item === undefined ? [] : [e.item])))];

export const spaceSync = defineAction(SpaceSyncParams, {
  name: 'space_sync',
  family: 'sync',
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
    for (const d of p.dests) {
      const target = await tenantSpace(ctx.core, tenantId, d.userSpaceID);
      ctx.log(`syncing '${p.srcPath}' of user space ${source.id} to '${d.path}' of user space ${target.id}`);
      try {
        const stats = await syncTree(
          new BackendTree(source.backend, srcRoot),
          new BackendTree(target.backend, checkSpacePath(d.path, 'destPathes')),
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
    ctx.log(`checked ${totals.checked}, copied ${totals.copied}, updated ${totals.updated}, deleted ${totals.deleted}, skipped ${totals.skipped}, failed ${totals.failed}`);
    // Files that failed are the job's errors; running the whole sync again would not fix them by itself.
    if (totals.failed > 0) throw new PermanentJobError(`${totals.failed} of ${totals.checked} files failed (see the errors; 'retry_failed' runs just those)`);
    return { ...totals, destinations } satisfies SpaceSyncResult;
  },
});
