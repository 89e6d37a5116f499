import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { AppError, badRequest, conflict, notFound } from '../lib/errors.ts';
import { createTrigger, disableTrigger } from '../jobs/scheduler.ts';
import { activeJobByKey, cancelJob, submitJob } from '../jobs/store.ts';
import type { CreateSpaceSyncTaskBody, SpaceSyncTask } from './models.ts';
import { checkSpaceSync, spaceSync, taskKeyOf as keyOf, type SpaceSyncParams } from './spaceSync.ts';

/**
 * Space sync tasks (`/v1/spaceSyncer`): a task names a source folder, destination folders and how
 * to compare; each run is a `space_sync` job. A task's runs never overlap (one concurrency key per
 * task); an Interval task's schedule is an interval trigger of the job engine.
 */
type Definition = Omit<SpaceSyncTask, 'taskID'>;

function toTask(row: { id: number; definition_json: string }): SpaceSyncTask {
  return { taskID: row.id, ...(JSON.parse(row.definition_json) as Definition) };
}

function paramsOf(taskId: number, d: Definition): SpaceSyncParams {
  return {
    taskID: taskId,
    srcUserSpaceID: d.srcUserSpaceID,
    srcPath: d.srcPath,
    dests: d.destUserSpaceIDs.map((id, i) => ({ userSpaceID: id, path: d.destPathes[i]! })),
    mode: d.mode,
    filters: d.filters,
    options: d.options,
  };
}

async function checkDefinition(core: Core, actor: Actor, body: CreateSpaceSyncTaskBody): Promise<Definition> {
  if (body.destUserSpaceIDs.length !== body.destPathes.length) {
    throw badRequest(
      `destUserSpaceIDs has ${body.destUserSpaceIDs.length} entries and destPathes ${body.destPathes.length}; they pair up and must be as long`,
      'destPathes',
    );
  }
  const filters = body.filters ?? [];
  const dests = body.destUserSpaceIDs.map((id, i) => ({ userSpaceID: id, path: body.destPathes[i]! }));
  await checkSpaceSync(
    core,
    actor.tenantId,
    { srcUserSpaceID: body.srcUserSpaceID, srcPath: body.srcPath, dests, filters },
    (i) => `destPathes[${i}]`,
  );
  return {
    trigger: body.trigger,
    mode: body.mode,
    filters,
    options: body.options ?? {},
    srcUserSpaceID: body.srcUserSpaceID,
    srcPath: body.srcPath,
    destUserSpaceIDs: body.destUserSpaceIDs,
    destPathes: body.destPathes,
  };
}

async function ownTask(core: Core, actor: Actor, taskId: number) {
  const row = await core.db
    .selectFrom('sync_tasks')
    .selectAll()
    .where('id', '=', taskId)
    .where('tenant_id', '=', actor.tenantId)
    .executeTakeFirst();
  if (!row) throw notFound(`sync task ${taskId}`);
  return row;
}

function runOf(core: Core, actor: Actor, taskId: number, d: Definition) {
  return submitJob(core, {
    tenantId: actor.tenantId,
    action: spaceSync.name,
    params: paramsOf(taskId, d),
    trigger: 'manual',
    referenceId: keyOf(taskId),
    concurrencyKey: keyOf(taskId),
    createdBy: actor.userId,
  });
}

export async function createSpaceSyncTask(core: Core, actor: Actor, body: CreateSpaceSyncTaskBody): Promise<SpaceSyncTask> {
  requireRole(actor, 'member');
  const definition = await checkDefinition(core, actor, body);
  const now = Date.now();
  const row = await core.db
    .insertInto('sync_tasks')
    .values({
      tenant_id: actor.tenantId,
      definition_json: JSON.stringify(definition),
      trigger_id: null,
      created_by: actor.userId,
      created_at: now,
      updated_at: now,
    })
    .returning(['id', 'definition_json'])
    .executeTakeFirstOrThrow();
  try {
    if (definition.trigger.type === 'Interval') {
      const trigger = await createTrigger(core, {
        tenantId: actor.tenantId,
        action: spaceSync.name,
        params: paramsOf(row.id, definition),
        referenceId: keyOf(row.id),
        concurrencyKey: keyOf(row.id),
        createdBy: actor.userId,
        intervalSeconds: definition.trigger.interval,
        runNow: true,
      });
      await core.db.updateTable('sync_tasks').set({ trigger_id: trigger.id }).where('id', '=', row.id).execute();
    } else if (definition.trigger.type === 'Once') {
      await runOf(core, actor, row.id, definition);
    }
  } catch (err) {
    await core.db.deleteFrom('sync_tasks').where('id', '=', row.id).execute();
    throw err;
  }
  return toTask(row);
}

export async function getSpaceSyncTask(core: Core, actor: Actor, taskId: number): Promise<SpaceSyncTask> {
  return toTask(await ownTask(core, actor, taskId));
}

export async function listSpaceSyncTasks(core: Core, actor: Actor): Promise<SpaceSyncTask[]> {
  const rows = await core.db
    .selectFrom('sync_tasks')
    .select(['id', 'definition_json'])
    .where('tenant_id', '=', actor.tenantId)
    .where('cancelled', '=', 0)
    .orderBy('id', 'desc')
    .limit(1000)
    .execute();
  return rows.map(toTask);
}

/** Starts a run now; 409 while one is pending or running, or when the task was cancelled. */
export async function runSpaceSyncTask(core: Core, actor: Actor, taskId: number): Promise<{ jobID: number }> {
  requireRole(actor, 'member');
  const row = await ownTask(core, actor, taskId);
  if (row.cancelled) throw conflict(`sync task ${taskId} was cancelled; create a new one`);
  const job = await runOf(core, actor, taskId, toTask(row));
  return { jobID: job.id };
}

/** Stops the task's schedule and its running run, if any. Cancelling twice is fine. */
export async function cancelSpaceSyncTask(core: Core, actor: Actor, taskId: number): Promise<void> {
  requireRole(actor, 'member');
  const row = await ownTask(core, actor, taskId);
  await core.db.updateTable('sync_tasks').set({ cancelled: 1, updated_at: Date.now() }).where('id', '=', taskId).execute();
  if (row.trigger_id !== null) await disableTrigger(core, actor.tenantId, row.trigger_id).catch(() => undefined);
  const running = await activeJobByKey(core, keyOf(taskId));
  if (!running) return;
  await cancelJob(core, actor.tenantId, running.id).catch((err: unknown) => {
    // Finished meanwhile: nothing left to stop.
    if (!(err instanceof AppError && err.kind === 'conflict')) throw err;
  });
}
