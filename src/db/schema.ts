import type { Generated } from 'kysely';

/**
 * Row shapes of the metadata database. Times are epoch milliseconds (integers on both SQLite and
 * PostgreSQL, so the same queries and comparisons run on both); booleans are 0/1 for the same reason.
 */
export interface Database {
  tenants: TenantsTable;
  tenant_usage: TenantUsageTable;
  users: UsersTable;
  memberships: MembershipsTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  invitations: InvitationsTable;
  auth_throttle: AuthThrottleTable;
  buckets: BucketsTable;
  packages: PackagesTable;
  user_spaces: UserSpacesTable;
  objects: ObjectsTable;
  object_parts: ObjectPartsTable;
  jobs: JobsTable;
  job_logs: JobLogsTable;
  job_triggers: JobTriggersTable;
  sync_tasks: SyncTasksTable;
  sync_sources: SyncSourcesTable;
  workspaces: WorkspacesTable;
  workspace_files: WorkspaceFilesTable;
  /** A snapshot being written, moved into workspace_files once whole. */
  workspace_files_next: WorkspaceFilesTable;
  s3_object_times: S3ObjectTimesTable;
  job_deliveries: JobDeliveriesTable;
  sweep_fences: SweepFencesTable;
  sweep_intents: SweepIntentsTable;
  shard_pins: ShardPinsTable;
}

export interface TenantsTable {
  id: Generated<number>;
  name: string;
  project_key: string;
  /** Where the tenant's jobs post their events when a job names no hook of its own. */
  webhook_url: Generated<string | null>;
  /** Signs every webhook of the tenant (sealed); made on first use. */
  webhook_secret_sealed: Generated<string | null>;
  created_at: number;
  updated_at: number;
}

/** What a tenant stores and its quota (src/storage/quota.ts); made with the tenant's first write. */
export interface TenantUsageTable {
  tenant_id: number;
  /** Bytes of its objects, each in full, and of its unfinished uploads' parts. */
  used_bytes: Generated<number>;
  /** Its object rows, unfinished multipart uploads included. */
  used_objects: Generated<number>;
  /** Bytes of the files Yunji wrote into its local spaces (outside `.yunji`), counted against `max_bytes` with `used_bytes`. */
  local_bytes: Generated<number>;
  /** The tenant's own limits; null: the operator's default (`tenantMaxBytes`, `tenantMaxObjects`); 0: none. */
  max_bytes: Generated<number | null>;
  max_objects: Generated<number | null>;
}

export interface UsersTable {
  id: Generated<number>;
  /** Lower-cased; unique. */
  email: string;
  display_name: string;
  /** Null until an invited user accepts and sets one. */
  password_hash: string | null;
  created_at: number;
  updated_at: number;
  last_login_at: number | null;
  /**
   * Set on a pending invitee's row only: the email invited. Such a row stands for the invitee in one
   * tenant until they accept (then it is merged into the account); its `email` is a placeholder.
   */
  invited_email: Generated<string | null>;
}

export interface MembershipsTable {
  id: Generated<number>;
  tenant_id: number;
  user_id: number;
  role: string;
  status: string;
  invited_by: number | null;
  created_at: number;
  updated_at: number;
}

export interface SessionsTable {
  id: Generated<number>;
  token_hash: string;
  user_id: number;
  current_tenant_id: number;
  created_at: number;
  expires_at: number;
}

export interface ApiKeysTable {
  id: Generated<number>;
  tenant_id: number;
  /** The user the key acts as (its creator). */
  user_id: number;
  name: string;
  role: string;
  key_hash: string;
  /** First characters of the key, shown in listings so a user can tell keys apart. */
  key_prefix: string;
  created_at: number;
  last_used_at: number | null;
}

export interface InvitationsTable {
  id: Generated<number>;
  tenant_id: number;
  user_id: number;
  role: string;
  token_hash: string;
  invited_by: number;
  created_at: number;
  expires_at: number;
  accepted_at: number | null;
}

export interface AuthThrottleTable {
  /** `email:<address>` or `ip:<address>`. */
  key: string;
  failures: number;
  window_start: number;
}

export interface BucketsTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  created_at: number;
}

export interface PackagesTable {
  id: Generated<number>;
  bucket_id: number;
  name: string;
  created_at: number;
}

export interface UserSpacesTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  /** The storage description as given (`{type, root}` for local, `{type, endpoint, …}` for S3), JSON. */
  storage_json: string;
  /** Cap on the bytes the shard store may hold; null: none. */
  shard_max_size: number | null;
  /** Relative to the space's root; the shard store lives in `<working_dir>/.yunji/`. */
  working_dir: string;
  /** The credential JSON, sealed (src/lib/sealing.ts); null for local spaces. */
  credential_sealed: string | null;
  features_json: Generated<string>;
  /** Bytes the shard store holds (counted as shards are added and swept). */
  used_bytes: Generated<number>;
  is_default: number;
  revision: number;
  created_at: number;
  updated_at: number;
}

export interface ObjectsTable {
  id: Generated<number>;
  package_id: number;
  path: string;
  size: number;
  /** Upper-case hex SHA-256 of the content; the shard's name in its space. */
  hash: string;
  space_id: number;
  /** `none`, or `multipartUpload` while parts are being uploaded. */
  redundancy: string;
  /** The user who uploaded (or cloned, or started the multipart upload of) the object. */
  created_by: Generated<number | null>;
  created_at: number;
  updated_at: number;
  /** For an object a source sync wrote: the source file's modification time and version token. */
  source_mtime: Generated<number | null>;
  source_tag: Generated<string | null>;
}

/** Parts of an object being uploaded in pieces; each part's bytes are a shard of its space. */
export interface ObjectPartsTable {
  object_id: number;
  part_index: number;
  size: number;
  hash: string;
  space_id: number;
  created_at: number;
}

/** One unit of long work (see src/jobs/). JSON columns hold what the job's action defines. */
export interface JobsTable {
  id: Generated<number>;
  tenant_id: number;
  action: string;
  /** manual | interval | action | system */
  trigger: string;
  description: string;
  reference_id: string | null;
  params_json: string;
  /** scheduled | running | completed | failed | cancelled */
  status: string;
  concurrency_key: string | null;
  progress_json: string | null;
  stats_json: string | null;
  result_json: string | null;
  /** The first errors (a bounded list); error_count counts all of them. */
  errors_json: string | null;
  error_count: Generated<number>;
  notify_hook: string | null;
  state: string | null;
  parent_id: number | null;
  trigger_id: number | null;
  created_by: number | null;
  attempts: Generated<number>;
  max_attempts: number;
  cancel_requested: Generated<number>;
  lease_owner: string | null;
  lease_expires_at: number | null;
  sequence: Generated<number>;
  start_at: number;
  started_at: number | null;
  ended_at: number | null;
  created_at: number;
  updated_at: number | null;
}

export interface JobLogsTable {
  job_id: number;
  line: number;
  level: string;
  message: string;
  at: number;
}

/** Creates a job every `interval_seconds`. */
export interface JobTriggersTable {
  id: Generated<number>;
  tenant_id: number;
  action: string;
  params_json: string;
  description: string;
  reference_id: string | null;
  concurrency_key: string | null;
  notify_hook: string | null;
  created_by: number | null;
  interval_seconds: number;
  next_run_at: number;
  enabled: number;
  created_at: number;
  updated_at: number;
}

/** One webhook POST of one job event, kept until delivered or given up. */
export interface JobDeliveriesTable {
  id: Generated<number>;
  job_id: number;
  tenant_id: number;
  sequence: number;
  event: string;
  url: string;
  payload: string;
  /** pending | delivered | failed */
  status: string;
  attempts: Generated<number>;
  next_attempt_at: number;
  last_status_code: number | null;
  last_error: string | null;
  lease_expires_at: number | null;
  created_at: number;
  delivered_at: number | null;
}

/** A space sync task (`/v1/spaceSyncer`); its runs are `space_sync` jobs. */
export interface SyncTasksTable {
  id: Generated<number>;
  tenant_id: number;
  definition_json: string;
  trigger_id: number | null;
  cancelled: Generated<number>;
  created_by: number | null;
  created_at: number;
  updated_at: number;
}

/** An external data source of a tenant (`/api/sync/sources`), synced into a package. */
export interface SyncSourcesTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  type: string;
  config_json: string;
  secret_sealed: string | null;
  package_id: number;
  mirror: number;
  is_default: number;
  created_at: number;
  updated_at: number;
}

/** A tenant's two-way workspace sync profile and its last outcome. */
export interface WorkspacesTable {
  tenant_id: number;
  local_space_id: number;
  local_path: string;
  cloud_space_id: number;
  cloud_path: string;
  cloud_name: Generated<string>;
  last_synced_at: number | null;
  stat: Generated<string>;
  last_error: string | null;
  updated_at: number;
}

/** One file as both sides of a workspace held it after the last sync. */
export interface WorkspaceFilesTable {
  tenant_id: number;
  path: string;
  size: number;
  local_mtime: number;
  cloud_mtime: number;
}

/** An object Yunji wrote to an S3 bucket with a file time, as it was then (see src/spaces/s3ObjectTimes.ts). */
export interface S3ObjectTimesTable {
  /** The bucket and its endpoint (`keptTimesLocation`). */
  location: string;
  key: string;
  /** As S3 gave it, without quotes. */
  etag: string;
  size: number;
  mtime_ms: number;
}

/** A process's fence against the sweeper (src/spaces/writeFence.ts). */
export interface SweepFencesTable {
  owner: string;
  /** Nothing written since this time (epoch ms) may be swept while the fence is live. */
  floor: number;
  expires_at: number;
}

/** A sweeper's intent to remove a shard, renewed while it lasts (src/spaces/shardGuard.ts). */
export interface SweepIntentsTable {
  space_id: number;
  hash: string;
  renewed_at: number;
}

/** A write's pin on a shard it found stored, dropped once a sweep's cutoff passes it. */
export interface ShardPinsTable {
  space_id: number;
  hash: string;
  created_at: number;
}
