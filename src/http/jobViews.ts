import { Type, type Static } from '@sinclair/typebox';
import { badRequest } from '../lib/errors.ts';
import { isoOrNull, iso } from '../lib/time.ts';
import type { ActionCatalog } from '../jobs/actions.ts';
import { buttonsOf, customIdOf } from '../jobs/buttons.ts';
import { JobError, JobProgress, type Job, type JobEvent, type JobEventType } from '../jobs/models.ts';

/**
 * A job as each surface shows it, and as webhooks and event streams carry it: the engine posts the
 * shapes these functions make (the composition root hands them to it), it does not know them.
 */

/** Why a job failed: the last error not about one item (what stopped it). */
export function failReasonOf(job: Job): string | null {
  if (job.status !== 'failed' && job.status !== 'cancelled') return null;
  const fatal = [...job.errors].reverse().find((e) => e.item === undefined);
  return fatal?.message ?? (job.status === 'cancelled' ? 'cancelled' : null);
}

// ---- /public/{projectKey}/jobs (003-jobs-api): epoch ms, engine statuses ----

export const PublicJob = Type.Object(
  {
    jobId: Type.Integer(),
    description: Type.String(),
    status: Type.String({ description: 'scheduled, running, completed, failed or cancelled' }),
    projectId: Type.Integer({ description: "The tenant's id." }),
    action: Type.String(),
    referenceId: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.Integer(),
    updatedAt: Type.Union([Type.Integer(), Type.Null()]),
    startAt: Type.Integer(),
    errors: Type.Union([Type.Array(JobError), Type.Null()]),
  },
  { title: 'PublicJob' },
);
export type PublicJob = Static<typeof PublicJob>;

export function publicJob(job: Job): PublicJob {
  return {
    jobId: job.id,
    description: job.description,
    status: job.status,
    projectId: job.tenantId,
    action: job.action,
    referenceId: job.referenceId,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    startAt: job.startAt,
    errors: job.errors.length > 0 ? job.errors : null,
  };
}

// ---- /api/jobs (platform JSON: snake_case, ISO times, the platform's JobStatus) ----

const PLATFORM_STATUS = {
  scheduled: 'pending',
  running: 'running',
  completed: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export const PlatformJobStatus = Type.Union(
  Object.values(PLATFORM_STATUS).map((s) => Type.Literal(s)),
  { title: 'JobStatus' },
);
export const platformStatus = (s: Job['status']) => PLATFORM_STATUS[s];
/** The engine's statuses a platform status filter means (either vocabulary is accepted). */
export function engineStatuses(filter: string): Job['status'][] | undefined {
  for (const [engine, platform] of Object.entries(PLATFORM_STATUS))
    if (filter === engine || filter === platform) return [engine as Job['status']];
  return undefined;
}

/** A `status` query parameter of a platform job list: absent, or the statuses it means (400 otherwise). */
export function statusFilter(raw: string | undefined): Job['status'][] | undefined {
  if (raw === undefined) return undefined;
  const status = engineStatuses(raw);
  if (!status) throw badRequest(`status must be one of pending, running, succeeded, failed, cancelled (got '${raw}')`, 'status');
  return status;
}

export const JobButtonView = Type.Object(
  { customId: Type.String(), label: Type.String(), emoji: Type.String(), style: Type.Integer(), type: Type.Integer() },
  { title: 'JobButton' },
);

export const PlatformJob = Type.Object(
  {
    id: Type.Integer(),
    job_type: Type.String({ description: 'The action.' }),
    trigger_type: Type.String({ description: 'manual, interval, action or system' }),
    status: PlatformJobStatus,
    description: Type.String(),
    reference_id: Type.Union([Type.String(), Type.Null()]),
    parent_id: Type.Union([Type.Integer(), Type.Null()]),
    progress: Type.Union([JobProgress, Type.Null()]),
    stats: Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()]),
    result: Type.Unknown(),
    errors: Type.Array(JobError),
    error_count: Type.Integer(),
    error_message: Type.Union([Type.String(), Type.Null()]),
    attempts: Type.Integer(),
    max_attempts: Type.Integer(),
    cancel_requested: Type.Boolean(),
    state: Type.Union([Type.String(), Type.Null()]),
    buttons: Type.Array(JobButtonView),
    metadata: Type.Record(Type.String(), Type.String()),
    start_at: Type.String({ format: 'date-time' }),
    started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    ended_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'Job' },
);
export type PlatformJob = Static<typeof PlatformJob>;

function buttonViews(job: Job, actions: ActionCatalog) {
  // Discord-style components, as the task spec's clients expect: type 2 is a button, style 2 secondary.
  return buttonsOf(job, actions).map((b) => ({ customId: customIdOf(job, b), label: b.label, emoji: b.emoji, style: 2, type: 2 }));
}

export function platformJob(job: Job, actions: ActionCatalog): PlatformJob {
  const metadata: Record<string, string> = { action: job.action };
  if (job.referenceId !== null) metadata.reference_id = job.referenceId;
  if (job.triggerId !== null) metadata.trigger_id = String(job.triggerId);
  return {
    id: job.id,
    job_type: job.action,
    trigger_type: job.trigger,
    status: platformStatus(job.status),
    description: job.description,
    reference_id: job.referenceId,
    parent_id: job.parentId,
    progress: job.progress,
    stats: job.stats,
    result: job.result,
    errors: job.errors,
    error_count: job.errorCount,
    error_message: failReasonOf(job),
    attempts: job.attempts,
    max_attempts: job.maxAttempts,
    cancel_requested: job.cancelRequested,
    state: job.state,
    buttons: buttonViews(job, actions),
    metadata,
    start_at: iso(job.startAt),
    started_at: isoOrNull(job.startedAt),
    ended_at: isoOrNull(job.endedAt),
    created_at: iso(job.createdAt),
    updated_at: isoOrNull(job.updatedAt),
  };
}

// ---- /mj tasks (002-task-action) ----

export const TaskStatus = Type.Union(
  ['NOT_START', 'SUBMITTED', 'IN_PROGRESS', 'SUCCESS', 'FAILURE', 'CANCEL'].map((s) => Type.Literal(s)),
  { title: 'TaskStatus' },
);

export const Task = Type.Object(
  {
    id: Type.String(),
    action: Type.String(),
    status: TaskStatus,
    progress: Type.String({ description: 'Percent done, e.g. "42%".' }),
    description: Type.String(),
    state: Type.Union([Type.String(), Type.Null()]),
    submitTime: Type.Integer(),
    startTime: Type.Union([Type.Integer(), Type.Null()]),
    finishTime: Type.Union([Type.Integer(), Type.Null()]),
    failReason: Type.Union([Type.String(), Type.Null()]),
    properties: Type.Record(Type.String(), Type.Unknown()),
    buttons: Type.Array(JobButtonView),
  },
  { title: 'Task' },
);
export type Task = Static<typeof Task>;

function taskStatus(job: Job): Static<typeof TaskStatus> {
  switch (job.status) {
    case 'scheduled':
      return job.startAt > Date.now() ? 'NOT_START' : 'SUBMITTED';
    case 'running':
      return 'IN_PROGRESS';
    case 'completed':
      return 'SUCCESS';
    case 'failed':
      return 'FAILURE';
    case 'cancelled':
      return 'CANCEL';
  }
}

export function percentOf(job: Job): string {
  if (job.status === 'completed') return '100%';
  const p = job.progress;
  if (!p || p.total <= 0) return '0%';
  return `${Math.min(100, Math.floor((p.current / p.total) * 100))}%`;
}

export function task(job: Job, actions: ActionCatalog): Task {
  const properties: Record<string, unknown> = {
    parentId: job.parentId === null ? null : String(job.parentId),
    referenceId: job.referenceId,
    attempts: job.attempts,
  };
  if (job.progress) properties.progress = job.progress;
  if (job.stats) properties.stats = job.stats;
  if (job.result !== null) properties.result = job.result;
  if (job.errorCount > 0) properties.errorCount = job.errorCount;
  return {
    id: String(job.id),
    action: job.action,
    status: taskStatus(job),
    progress: percentOf(job),
    description: job.description,
    state: job.state,
    submitTime: job.createdAt,
    startTime: job.startedAt,
    finishTime: job.endedAt,
    failReason: failReasonOf(job),
    properties,
    buttons: buttonViews(job, actions),
  };
}

// ---- event names (WebSocket, SSE, webhooks) ----

const JOB_EVENT: Record<JobEventType, string> = {
  created: 'jobCreated',
  begin: 'jobBegin',
  progress: 'jobProgress',
  log: 'jobLog',
  retry: 'jobRetry',
  end: 'jobEnd',
  fail: 'jobFail',
  cancel: 'jobCancel',
};
// The names 001-perform-sync.txt gives sync progress; sync jobs have no own name for created or cancel.
const SYNC_EVENT: Partial<Record<JobEventType, string>> = {
  begin: 'syncBegin',
  progress: 'syncProgress',
  log: 'syncLog',
  retry: 'syncRetry',
  end: 'syncEnd',
  fail: 'syncFail',
};

export function eventName(type: JobEventType, job: Job, actions: ActionCatalog): string {
  return (actions.get(job.action)?.family === 'sync' ? SYNC_EVENT[type] : undefined) ?? JOB_EVENT[type];
}

/** Jobs made by a follow-up action on the task surface show as tasks; all others as platform jobs. */
export const isTask = (job: Job) => job.trigger === 'action';

/** What a hook receives, and an event stream carries: the job as its surface shows it, the event's name and its sequence number. */
export function webhookPayload(actions: ActionCatalog, event: JobEvent): Record<string, unknown> {
  const view = isTask(event.job) ? task(event.job, actions) : platformJob(event.job, actions);
  return { ...view, event: eventName(event.type, event.job, actions), sequence: event.job.sequence };
}
