import type { Selectable } from 'kysely';
import { schemaIssue } from '../lib/validation.ts';
import type { Core } from './core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import type { Db } from '../db/index.ts';
import type { JobsTable } from '../db/schema.ts';
import { AppError, badRequest, conflict, notFound, type ErrorKind } from '../lib/errors.ts';
import { TurnBatch } from '../lib/turnBatch.ts';
import type { JobAction } from './actions.ts';
import { announce } from './announce.ts';
import { isTerminal, type Job, type JobStatus, type JobTrigger } from './models.ts';
import { checkHookUrl, enqueueDelivery, hookFor } from './webhooks.ts';

export type JobRow = Selectable<JobsTable>;

const parse = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

export function toJob(r: JobRow): Job {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    action: r.action,
    trigger: r.trigger as JobTrigger,
    description: r.description,
    referenceId: r.reference_id,
    params: parse(r.params_json),
    status: r.status as JobStatus,
    concurrencyKey: r.concurrency_key,
    progress: parse(r.progress_json) as Job['progress'],
    stats: parse(r.stats_json) as Job['stats'],
    result: parse(r.result_json),
    errors: (parse(r.errors_json) as Job['errors'] | null) ?? [],
    errorCount: r.error_count,
    notifyHook: r.notify_hook,
    state: r.state,
    parentId: r.parent_id,
    triggerId: r.trigger_id,
    createdBy: r.created_by,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    cancelRequested: r.cancel_requested === 1,
    sequence: r.sequence,
    startAt: r.start_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface JobSpec {
  tenantId: number;
  action: string;
  params?: unknown;
  trigger?: JobTrigger;
  /** Defaults to the action's description of its parameters. */
  description?: string;
  referenceId?: string | null;
  /** At most one scheduled or running job per key; a second submit is a conflict. */
  concurrencyKey?: string | null;
  /** Epoch ms; default now. */
  startAt?: number;
  notifyHook?: string | null;
  state?: string | null;
  parentId?: number | null;
  triggerId?: number | null;
  createdBy?: number | null;
}

/** A conflict that names the job already holding the key. */
export class JobKeyConflict extends AppError {
  constructor(readonly existing: Job) {
    super('conflict', `job ${existing.id} (${existing.action}) is already ${existing.status} for this; wait for it or cancel it`);
  }
}

/** Checks what a job would run with; throws 400 naming the problem. */
export function checkedParams(core: Core, action: string, params: unknown): unknown {
  const definition = core.jobs.actions.get(action);
  if (!definition) throw badRequest(`unknown action '${action}' (known: ${core.jobs.actions.names().join(', ')})`, 'action');
  // The project's one validator (formats, string enums), which also fills in defaults.
  const value = structuredClone(params ?? {});
  const issue = schemaIssue(definition.params, value);
  if (issue) {
    const field = issue.path ? `params.${issue.path}` : 'params';
    throw badRequest(`${field}: ${issue.message}`, field);
  }
  return value;
}

/** Records a new job and announces it; due jobs wake the workers. */
export async function submitJob(core: Core, spec: JobSpec): Promise<Job> {
  const params = checkedParams(core, spec.action, spec.params);
  const definition = core.jobs.actions.get(spec.action)!;
  if (spec.notifyHook) await checkHookUrl(core, spec.notifyHook, 'notifyHook');
  const now = Date.now();
  const hook = await hookFor(core, spec.tenantId, spec.notifyHook || null);
  let job: Job;
  try {
    const row = rowOf(spec, params, definition, now);
    // The created event's webhook delivery is written with the job: another process may claim the
    // job the moment it commits, and its later events must queue behind this one.
    const withDelivery = (trx: Db) =>
      trx
        .insertInto('jobs')
        .values(row)
        .returningAll()
        .executeTakeFirstOrThrow()
        .then(async (inserted) => {
          const created = toJob(inserted);
          await enqueueDelivery(core, { type: 'created', job: created }, trx);
          return created;
        });
    job = hook ? await core.db.transaction().execute(withDelivery) : toJob(await jobInserterOf(core.db).submit(row));
  } catch (err) {
    if (spec.concurrencyKey && isUniqueViolation(err)) {
      const existing = await activeJobByKey(core, spec.concurrencyKey);
      if (existing) throw new JobKeyConflict(existing);
      throw conflict('another job with the same concurrency key was just submitted');
    }
    throw err;
  }
  await announce(core, { type: 'created', job }, { deliveryRecorded: hook !== null });
  if (job.startAt <= now) await core.jobs.events.wake();
  return job;
}

type NewJob = Omit<JobRow, 'id'>;

/** The row a new job starts as. */
function rowOf(spec: JobSpec, params: unknown, definition: JobAction, now: number): NewJob {
  return {
    tenant_id: spec.tenantId,
    action: spec.action,
    trigger: spec.trigger ?? 'manual',
    description: spec.description ?? definition.describe(params),
    reference_id: spec.referenceId ?? null,
    params_json: JSON.stringify(params),
    status: 'scheduled',
    concurrency_key: spec.concurrencyKey ?? null,
    progress_json: null,
    stats_json: null,
    result_json: null,
    errors_json: null,
    error_count: 0,
    notify_hook: spec.notifyHook || null,
    state: spec.state ?? null,
    parent_id: spec.parentId ?? null,
    trigger_id: spec.triggerId ?? null,
    created_by: spec.createdBy ?? null,
    attempts: 0,
    max_attempts: definition.maxAttempts,
    cancel_requested: 0,
    lease_owner: null,
    lease_expires_at: null,
    sequence: 1,
    start_at: spec.startAt ?? now,
    started_at: null,
    ended_at: null,
    created_at: now,
    updated_at: null,
  };
}

/** Rows per insert statement (well below either database's limit on bound parameters). */
const MAX_INSERT_ROWS = 500;

/**
 * New jobs as one multi-row insert returning only their ids. If it fails as a whole (a concurrency
 * key taken by one of them), TurnBatch inserts each row on its own.
 */
async function insertJobs(db: Db, rows: NewJob[]): Promise<JobRow[]> {
  const ids = (await db.insertInto('jobs').values(rows).returning('id').execute()).map((r) => r.id);
  // RETURNING's order is not promised (SQLite says so), but ids are handed out in the order of the
  // VALUES rows on both databases: the sorted ids are the rows' in order.
  ids.sort((a, b) => a - b);
  return rows.map((row, i) => ({ id: ids[i]!, ...row }));
}

/** Submits of one turn without a webhook share an insert: an insert per job caps a busy submitter (docs/BENCHMARKS.md, "Jobs"). */
const inserters = new WeakMap<Db, TurnBatch<NewJob, JobRow>>();

function jobInserterOf(db: Db): TurnBatch<NewJob, JobRow> {
  let inserter = inserters.get(db);
  if (!inserter) inserters.set(db, (inserter = new TurnBatch((rows) => insertJobs(db, rows), { max: MAX_INSERT_ROWS })));
  return inserter;
}

/** The scheduled or running job holding a concurrency key, if any. */
export async function activeJobByKey(core: Core, key: string): Promise<Job | undefined> {
  const row = await core.db
    .selectFrom('jobs')
    .selectAll()
    .where('concurrency_key', '=', key)
    .where('status', 'in', ['scheduled', 'running'])
    .executeTakeFirst();
  return row ? toJob(row) : undefined;
}

export async function jobById(core: Core, id: number): Promise<Job | undefined> {
  const row = await core.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toJob(row) : undefined;
}

/** One job of the tenant; another tenant's is as absent as a missing one (404). */
export async function tenantJob(core: Core, tenantId: number, id: number): Promise<Job> {
  const row = await core.db.selectFrom('jobs').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
  if (!row) throw notFound(`job ${id}`);
  return toJob(row);
}

export interface JobFilter {
  status?: JobStatus[];
  action?: string;
  referenceId?: string;
  offset: number;
  limit: number;
}

/** The tenant's jobs, newest first, and how many match in all. */
export async function listJobs(core: Core, tenantId: number, f: JobFilter): Promise<{ jobs: Job[]; total: number }> {
  let q = core.db.selectFrom('jobs').where('tenant_id', '=', tenantId);
  if (f.status?.length) q = q.where('status', 'in', f.status);
  if (f.action) q = q.where('action', '=', f.action);
  if (f.referenceId !== undefined) q = q.where('reference_id', '=', f.referenceId);
  const [rows, count] = await Promise.all([
    q.selectAll().orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { jobs: rows.map(toJob), total: Number(count.n) };
}

export async function jobsByIds(core: Core, tenantId: number, ids: number[]): Promise<Job[]> {
  if (ids.length === 0) return [];
  const rows = await core.db.selectFrom('jobs').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
  return rows.map(toJob);
}

const KINDS: readonly ErrorKind[] = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'too_large',
  'rate_limited',
  'unavailable',
  'backend_failed',
  'insufficient_storage',
];

/** A failed or cancelled job's failure as the error a request running it answers with. */
export function failureOf(job: Job): AppError {
  if (job.status === 'cancelled') return conflict(`job ${job.id} was cancelled`);
  const fatal = [...job.errors].reverse().find((e) => e.item === undefined);
  const kind = KINDS.find((k) => k === fatal?.code) ?? 'backend_failed';
  return new AppError(kind, fatal?.message ?? `job ${job.id} failed`);
}

/** How long a cancel request waits for a running job to stop before answering with what it sees. */
const CANCEL_WAIT_MS = 3000;

/**
 * Cancels a job: a scheduled one at once; a running one is asked to stop (its handler's signal
 * fires in whichever process runs it) and the answer waits briefly for it to end. A finished job
 * cannot be cancelled (409).
 */
export async function cancelJob(core: Core, tenantId: number, id: number): Promise<Job> {
  for (;;) {
    const job = await tenantJob(core, tenantId, id);
    if (isTerminal(job.status)) throw conflict(`job ${id} is already ${job.status}; only a scheduled or running job can be cancelled`);
    const now = Date.now();
    if (job.status === 'scheduled') {
      const row = await core.db
        .updateTable('jobs')
        .set((eb) => ({ status: 'cancelled', ended_at: now, updated_at: now, sequence: eb('sequence', '+', 1) }))
        .where('id', '=', id)
        .where('status', '=', 'scheduled')
        .returningAll()
        .executeTakeFirst();
      if (!row) continue; // claimed meanwhile: cancel it as a running job
      const cancelled = toJob(row);
      await announce(core, { type: 'cancel', job: cancelled });
      return cancelled;
    }
    const marked = await core.db
      .updateTable('jobs')
      .set({ cancel_requested: 1 })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .executeTakeFirst();
    if (Number(marked.numUpdatedRows) === 0) continue;
    await core.jobs.events.cancel(id);
    return waitForJob(core, id, AbortSignal.timeout(CANCEL_WAIT_MS)).catch(async () => (await jobById(core, id))!);
  }
}

/**
 * Resolves with the job once it has finished (completed, failed or cancelled). Listens to the job
 * events and also reads the row now and then, so an event missed between processes only delays it.
 * Rejects when `signal` fires.
 */
export function waitForJob(core: Core, id: number, signal?: AbortSignal): Promise<Job> {
  return new Promise<Job>((resolve, reject) => {
    let done = false;
    const finish = (job: Job | undefined, err?: unknown) => {
      if (done) return;
      if (!err && (!job || !isTerminal(job.status))) return;
      done = true;
      off();
      clearInterval(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(job!);
    };
    const check = () =>
      void jobById(core, id).then(
        (j) => finish(j),
        (err: unknown) => finish(undefined, err),
      );
    const off = core.jobs.events.on('event', (e) => {
      if (e.job.id === id) finish(e.job);
    });
    const timer = setInterval(check, 1000);
    const onAbort = () => finish(undefined, signal!.reason);
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    check();
  });
}

export async function jobLogs(core: Core, jobId: number, afterLine = 0, limit = 1000) {
  return core.db
    .selectFrom('job_logs')
    .select(['line', 'level', 'message', 'at'])
    .where('job_id', '=', jobId)
    .where('line', '>', afterLine)
    .orderBy('line')
    .limit(limit)
    .execute();
}
