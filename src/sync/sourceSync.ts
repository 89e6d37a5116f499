import { Type } from '@sinclair/typebox';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { badRequest, notFound } from '../lib/errors.ts';
import { defineAction, PermanentJobError } from '../jobs/actions.ts';
import type { Job, JobStatus } from '../jobs/models.ts';
import { listJobs, submitJob, tenantJob } from '../jobs/store.ts';
import { outboundPolicy } from '../lib/outbound.ts';
import { LocalBackend } from '../backends/localBackend.ts';
import { asClientError } from '../backends/backendError.ts';
import { openBackend, s3Network } from '../spaces/storageConfig.ts';
import { syncTree } from './engine.ts';
import { ManifestTree, type ManifestProblem } from './manifestTree.ts';
import { emptyStats } from './models.ts';
import { PackageTree } from './packageTree.ts';
import { defaultSource, ownSource, sourceConfig, sourceNamed, type SourceConfig, type SourceRow } from './sources.ts';
import { BackendTree, type SyncTree } from './tree.ts';
import { YunjiTree } from './yunjiTree.ts';

/** A `source_sync` job: one external data source into its package. */
const SourceSyncParams = Type.Object({ sourceId: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

const referenceOf = (sourceId: number) => `source:${sourceId}`;
/** One sync of a source at a time, however it was asked for. */
const keyOf = (sourceId: number) => `sourceSync:${sourceId}`;

/** The source's tree; entries it lists but cannot sync (a manifest's bad entries) are told to `problem`. */
async function treeOf(core: Core, row: SourceRow, signal: AbortSignal, problem: (p: ManifestProblem) => void): Promise<SyncTree> {
  const config: SourceConfig = sourceConfig(core, row);
  const outbound = outboundPolicy(core.config.outboundAllow);
  if (row.type === 'local') return new BackendTree(new LocalBackend((config as { path: string }).path), '');
  if (row.type === 's3') {
    const c = config as {
      endpoint?: string;
      region?: string;
      bucket: string;
      prefix?: string;
      force_path_style?: boolean;
      access_key_id: string;
      secret_access_key: string;
    };
    const backend = openBackend(
      {
        type: 'S3',
        bucket: c.bucket,
        ...(c.endpoint ? { endpoint: c.endpoint } : {}),
        ...(c.region ? { region: c.region } : {}),
        forcePathStyle: c.force_path_style ?? true,
      },
      { type: 'S3', accessKeyId: c.access_key_id, secretAccessKey: c.secret_access_key },
      s3Network(core.config),
      core.db,
    );
    return new BackendTree(backend, c.prefix ?? '');
  }
  const fetching = { outbound, timeoutMs: core.config.sourceTimeout * 1000 };
  if (row.type === 'yunji') {
    const c = config as { url: string; package_id: number; api_key: string };
    return new YunjiTree(new URL(c.url), c.package_id, c.api_key, { ...fetching, signal });
  }
  const c = config as { url: string; headers?: Record<string, string> };
  const manifest = new ManifestTree(new URL(c.url), { ...fetching, headers: c.headers });
  await manifest.load(signal, problem);
  return manifest;
}

export const sourceSync = defineAction(SourceSyncParams, {
  name: 'source_sync',
  family: 'sync',
  // As `POST /api/sync/jobs`: a member, with a source of the tenant.
  direct: {
    role: 'member',
    check: async (core, actor, p) => void (await ownSource(core, actor.tenantId, p.sourceId)),
    concurrencyKey: (_tenantId, p) => keyOf(p.sourceId),
  },
  maxAttempts: 3,
  describe: (p) => `Sync external data source ${p.sourceId} into its package`,
  async run(ctx) {
    const row = await ownSource(ctx.core, ctx.job.tenantId, ctx.params.sourceId).catch(() => {
      throw new PermanentJobError(`source ${ctx.params.sourceId} no longer exists`);
    });
    const totals = emptyStats();
    ctx.log(`syncing source '${row.name}' (${row.type}) into package ${row.package_id}${row.mirror ? ', mirroring' : ''}`);
    try {
      const tree = await treeOf(ctx.core, row, ctx.signal, (p) => {
        // The job keeps the first errors and counts the rest.
        ctx.error(p.message, p.path);
        totals.failed++;
      });
      await syncTree(
        tree,
        new PackageTree(ctx.core, ctx.job.tenantId, ctx.job.createdBy ?? 0, row.package_id),
        { mode: { type: 'Diff', includeSize: true, includeModTime: true }, filters: [], options: { delete: row.mirror === 1 } },
        ctx,
        totals,
      );
    } catch (err) {
      throw asClientError(err);
    }
    ctx.stats({ ...totals });
    if (totals.failed > 0) throw new PermanentJobError(`${totals.failed} files of source '${row.name}' failed (see the errors)`);
    return totals;
  },
});

/** Starts a sync of `source` (a name or id; absent: the tenant's default source). 409 while one of it is pending or running. */
export async function startSourceSync(core: Core, actor: Actor, source: string | undefined): Promise<Job> {
  requireRole(actor, 'member');
  const row = source === undefined ? await defaultSource(core, actor.tenantId) : await sourceNamed(core, actor.tenantId, source);
  if (!row)
    throw badRequest(
      source === undefined ? 'the tenant has no default source; name one in `source`' : `unknown source '${source.slice(0, 100)}'`,
      'source',
    );
  return submitJob(core, {
    tenantId: actor.tenantId,
    action: sourceSync.name,
    params: { sourceId: row.id },
    trigger: 'manual',
    description: `Sync source '${row.name}' (${row.type}) into package ${row.package_id}`,
    referenceId: referenceOf(row.id),
    concurrencyKey: keyOf(row.id),
    createdBy: actor.userId,
  });
}

export async function listSourceSyncJobs(
  core: Core,
  actor: Actor,
  f: { status?: JobStatus[]; source?: string; offset: number; limit: number },
): Promise<{ jobs: Job[]; total: number }> {
  let referenceId: string | undefined;
  if (f.source !== undefined) {
    const row = await sourceNamed(core, actor.tenantId, f.source);
    if (!row) return { jobs: [], total: 0 };
    referenceId = referenceOf(row.id);
  }
  return listJobs(core, actor.tenantId, { status: f.status, action: sourceSync.name, referenceId, offset: f.offset, limit: f.limit });
}

export async function sourceSyncJob(core: Core, actor: Actor, id: number): Promise<Job> {
  const job = await tenantJob(core, actor.tenantId, id);
  if (job.action !== sourceSync.name) throw notFound(`sync job ${id}`);
  return job;
}
