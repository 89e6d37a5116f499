import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from './core.ts';
import { AppError, badRequest, forbidden, notFound } from '../lib/errors.ts';
import type { DirectSubmit, JobAction } from './actions.ts';
import type { Job, JobStatus } from './models.ts';
import { cancelJob, checkedParams, jobLogs, listJobs, submitJob, tenantJob } from './store.ts';
import { createTrigger, deleteTrigger, listTriggers, toTrigger, type Trigger } from './scheduler.ts';
import { buttonsOf, parseCustomId } from './buttons.ts';
import { jobDeliveries } from './webhooks.ts';

/** Jobs as a signed-in actor sees and drives them: reading needs a viewer, changing a member, schedules an admin. */

export async function actorJobs(core: Core, actor: Actor, f: { status?: JobStatus[]; action?: string; offset: number; limit: number }) {
  requireRole(actor, 'viewer');
  return listJobs(core, actor.tenantId, f);
}

export async function actorJob(core: Core, actor: Actor, id: number): Promise<Job> {
  requireRole(actor, 'viewer');
  return tenantJob(core, actor.tenantId, id);
}

export async function actorCancel(core: Core, actor: Actor, id: number): Promise<Job> {
  requireRole(actor, 'member');
  return cancelJob(core, actor.tenantId, id);
}

export interface SubmitRequest {
  action: string;
  params?: unknown;
  description?: string;
  referenceId?: string;
  concurrencyKey?: string;
  startAt?: number;
  notifyHook?: string;
  state?: string;
}

/**
 * What every generic path (`POST /api/jobs`, interval triggers, follow-ups) checks before a job of
 * `action` is made: the action is known (400), may be asked for this way (403: it has its own
 * route), the actor's role is enough for it (403), its params are valid (400) and name only what
 * the tenant owns (404). Returns the action, its policy and the params with defaults filled in.
 */
async function directSubmission(
  core: Core,
  actor: Actor,
  action: string,
  params: unknown,
): Promise<{ definition: JobAction; direct: DirectSubmit; params: unknown }> {
  requireRole(actor, 'member');
  const definition = core.jobs.actions.get(action);
  if (!definition) throw badRequest(`unknown action '${action.slice(0, 64)}' (known: ${core.jobs.actions.names().join(', ')})`, 'action');
  const direct = definition.direct;
  if (direct === false)
    throw forbidden(`action '${action}' cannot be submitted directly; it is started only through its own route, with that route's checks`);
  requireRole(actor, direct.role);
  const value = checkedParams(core, action, params);
  await direct.check?.(core, actor, value);
  return { definition, direct, params: value };
}

/** Submits a job by hand; its concurrency key is the action's own (when it has one), else the caller's, scoped to the tenant. */
export async function actorSubmit(core: Core, actor: Actor, r: SubmitRequest): Promise<Job> {
  const { direct, params } = await directSubmission(core, actor, r.action, r.params);
  return submitJob(core, {
    tenantId: actor.tenantId,
    action: r.action,
    params,
    description: r.description,
    referenceId: r.referenceId,
    concurrencyKey:
      direct.concurrencyKey?.(actor.tenantId, params) ?? (r.concurrencyKey ? `tenant:${actor.tenantId}:${r.concurrencyKey}` : null),
    startAt: r.startAt,
    notifyHook: r.notifyHook,
    state: r.state,
    createdBy: actor.userId,
  });
}

export async function actorJobLogs(core: Core, actor: Actor, id: number, after: number, limit: number) {
  await actorJob(core, actor, id);
  return jobLogs(core, id, after, limit);
}

export async function actorDeliveries(core: Core, actor: Actor, id: number) {
  await actorJob(core, actor, id);
  return jobDeliveries(core, id);
}

export async function actorTriggers(core: Core, actor: Actor): Promise<Trigger[]> {
  requireRole(actor, 'viewer');
  return (await listTriggers(core, actor.tenantId)).map(toTrigger);
}

export async function actorCreateTrigger(
  core: Core,
  actor: Actor,
  r: { action: string; params?: unknown; interval: number; runNow?: boolean; notifyHook?: string },
): Promise<Trigger> {
  requireRole(actor, 'admin');
  const { direct, params } = await directSubmission(core, actor, r.action, r.params);
  const row = await createTrigger(core, {
    tenantId: actor.tenantId,
    action: r.action,
    params,
    // The action's own key, so a tick waits for a run its route started; else one run of the trigger at a time.
    concurrencyKey: direct.concurrencyKey?.(actor.tenantId, params) ?? undefined,
    intervalSeconds: r.interval,
    runNow: r.runNow,
    notifyHook: r.notifyHook,
    createdBy: actor.userId,
  });
  return toTrigger(row);
}

export async function actorDeleteTrigger(core: Core, actor: Actor, id: number): Promise<void> {
  requireRole(actor, 'admin');
  await deleteTrigger(core, actor.tenantId, id);
}

/** Why a follow-up action cannot be taken; the task surface answers each with its own code. */
export class FollowUpRefused extends AppError {
  constructor(
    readonly reason: 'no_task' | 'bad_button',
    message: string,
  ) {
    super(reason === 'no_task' ? 'not_found' : 'bad_request', message);
  }
}

/**
 * Submits a finished job's follow-up action (`rerun`, `retry` or the action's own): a new job,
 * its `parentId` the original, with the caller's hook and state, checked as a direct submission
 * of its action (jobs of actions with their own route offer no follow-ups). Returns it and how
 * many of the tenant's jobs are due ahead of it when the tenant's workers are all busy (0 otherwise).
 */
export async function followUp(
  core: Core,
  actor: Actor,
  r: { taskId: string; customId: string; notifyHook?: string; state?: string },
): Promise<{ job: Job; queuedAhead: number }> {
  requireRole(actor, 'member');
  const taskId = jobIdOf(r.taskId);
  if (taskId === undefined) throw new FollowUpRefused('no_task', `task '${r.taskId.slice(0, 40)}' does not exist`);
  const original = await tenantJob(core, actor.tenantId, taskId).catch((err: unknown) => {
    if (err instanceof AppError && err.kind === 'not_found') throw new FollowUpRefused('no_task', `task ${r.taskId} does not exist`);
    throw err;
  });
  const parsed = parseCustomId(r.customId);
  const button =
    parsed && parsed.jobId === original.id ? buttonsOf(original, core.jobs.actions).find((b) => b.name === parsed.name) : undefined;
  if (!button) {
    const offered = buttonsOf(original, core.jobs.actions);
    throw new FollowUpRefused(
      'bad_button',
      offered.length === 0
        ? `task ${original.id} is ${original.status}; follow-up actions are offered once it has finished`
        : `customId '${r.customId.slice(0, 80)}' is not one of task ${original.id}'s buttons`,
    );
  }
  const extra = core.jobs.actions.get(original.action)?.extraButtons?.find((e) => e.button.name === button.name);
  const { direct, params } = await directSubmission(core, actor, original.action, extra ? extra.params(original) : original.params);
  const job = await submitJob(core, {
    tenantId: actor.tenantId,
    action: original.action,
    params,
    trigger: 'action',
    referenceId: original.referenceId,
    concurrencyKey: direct.concurrencyKey?.(actor.tenantId, params) ?? original.concurrencyKey,
    notifyHook: r.notifyHook || original.notifyHook,
    state: r.state ?? null,
    parentId: original.id,
    createdBy: actor.userId,
  });
  return { job, queuedAhead: await queuedAhead(core, job) };
}

/**
 * The job's place in its tenant's queue (1: next) when the tenant already runs as many jobs as it
 * may; 0 when it has started or a worker slot is free for it.
 */
async function queuedAhead(core: Core, job: Job): Promise<number> {
  const counts = await core.db
    .selectFrom('jobs')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('tenant_id', '=', job.tenantId)
    .where('id', '!=', job.id)
    .where((eb) =>
      eb.or([
        eb('status', '=', 'running'),
        eb.and([eb('status', '=', 'scheduled'), eb('start_at', '<=', Date.now()), eb('id', '<', job.id)]),
      ]),
    )
    .groupBy('status')
    .execute();
  // Already claimed (workers were woken by the submit): it is not waiting.
  const now = await core.db.selectFrom('jobs').select('status').where('id', '=', job.id).executeTakeFirst();
  if (now?.status !== 'scheduled') return 0;
  const running = Number(counts.find((c) => c.status === 'running')?.n ?? 0);
  const ahead = Number(counts.find((c) => c.status === 'scheduled')?.n ?? 0);
  return running >= core.config.tenantJobConcurrency ? ahead + 1 : 0;
}

const JOB_ID_TEXT = /^[1-9]\d{0,15}$/;

/** A job id written plainly (`"42"`); anything else (`"0"`, `"-1"`, `"1.5"`, `"007"`, beyond 2^53) names no job. */
export function jobIdOf(text: string): number | undefined {
  if (!JOB_ID_TEXT.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A job id from a path: 400 when it is not a positive integer, 404 when it is one no job can have. */
export function checkJobId(raw: string, field = 'jobId'): number {
  if (!JOB_ID_TEXT.test(raw)) throw badRequest(`${field} must be a positive integer (got '${raw.slice(0, 40)}')`, field);
  const n = jobIdOf(raw);
  if (n === undefined) throw notFound(`job ${raw}`);
  return n;
}
