import type { Migration } from 'kysely';
import * as accounts from './0001_accounts.ts';
import * as bucketsPackages from './0002_buckets_packages.ts';
import * as spacesObjects from './0003_spaces_objects.ts';
import * as multipart from './0004_multipart.ts';
import * as spaceBackends from './0005_space_backends.ts';
import * as listingIndex from './0006_listing_index.ts';
import * as jobs from './0007_jobs.ts';
import * as syncTasks from './0008_sync_tasks.ts';
import * as syncSources from './0009_sync_sources.ts';
import * as workspaces from './0010_workspaces.ts';
import * as s3ObjectTimes from './0011_s3_object_times.ts';
import * as workspaceFilesNext from './0012_workspace_files_next.ts';
import * as oneObjectPathIndex from './0013_one_object_path_index.ts';
import * as sweepFences from './0014_sweep_fences.ts';
import * as tenantQuotas from './0015_tenant_quotas.ts';
import * as boundedJobs from './0016_bounded_jobs.ts';
import * as inviteeRows from './0017_invitee_rows.ts';
import * as shardHandshake from './0018_shard_handshake.ts';
import * as jobsWaitingIndex from './0019_jobs_waiting_index.ts';
import * as localFileBytes from './0020_local_file_bytes.ts';

/** Every migration, in order. Names never change once released. */
export const migrations: Record<string, Migration> = {
  '0001_accounts': accounts,
  '0002_buckets_packages': bucketsPackages,
  '0003_spaces_objects': spacesObjects,
  '0004_multipart': multipart,
  '0005_space_backends': spaceBackends,
  '0006_listing_index': listingIndex,
  '0007_jobs': jobs,
  '0008_sync_tasks': syncTasks,
  '0009_sync_sources': syncSources,
  '0010_workspaces': workspaces,
  '0011_s3_object_times': s3ObjectTimes,
  '0012_workspace_files_next': workspaceFilesNext,
  '0013_one_object_path_index': oneObjectPathIndex,
  '0014_sweep_fences': sweepFences,
  '0015_tenant_quotas': tenantQuotas,
  '0016_bounded_jobs': boundedJobs,
  '0017_invitee_rows': inviteeRows,
  '0018_shard_handshake': shardHandshake,
  '0019_jobs_waiting_index': jobsWaitingIndex,
  '0020_local_file_bytes': localFileBytes,
};
