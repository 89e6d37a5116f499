import type { Kysely, Selectable } from 'kysely';
import type { Core } from './core.ts';
import { lockTenantTriggers } from '../db/locks.ts';
import type { Database, JobTriggersTable } from '../db/schema.ts';
import { badRequest, conflict, notFound } from '../lib/errors.ts';
import { iso, isoOrNull } from '../lib/time.ts';
import { checkedParams, JobKeyConflict, submitJob } from './store.ts';
import { checkHookUrl } from './webhooks.ts';

/**
 * Interval triggers: a trigger makes one job every `interval` seconds. Any number of processes
 * look at due triggers; each tick is taken by moving `next_run_at` forward with a compare-and-set,
 * so exactly one process makes the tick's job. A tick whose previous job still holds the
 * trigger's concurrency key is skipped (logged), not queued behind it.
 */

type TriggerRow = Selectable<JobTriggersTable>;

export interface TriggerSpec {
  tenantId: number;
  action: string;
  params?: unknown;
  description?: string;
  referenceId?: string | null;
  /** Default: `trigger:<id>`, so runs of one trigger never overlap. */
  concurrencyKey?: string | null;
  notifyHook?: string | null;
  createdBy?: number | null;
  intervalSeconds: number;
  /** Run at once (and then every interval), or first after one interval. */
  runNow?: boolean;
}

export const MIN_INTERVAL = 1;
export const MAX_INTERVAL = 366 * 24 * 3600;

export interface Trigger {
  id: number;
  action: string;
  params: unknown;
  description: string;
  interval: number;
  nextRunAt: string | null;
  enabled: boolean;
  createdAt: string;
}

export function toTrigger(r: TriggerRow): Trigger {
  return {
    id: r.id,
    action: r.action,
    params: JSON.parse(r.params_json),
    description: r.description,
    interval: r.interval_seconds,
    nextRunAt: r.enabled ? isoOrNull(r.next_run_at) : null,
    enabled: r.enabled === 1,
    createdAt: iso(r.created_at),
  };
}

/**
 * A tenant may have at most `maxTriggersPerTenant` enabled triggers: each makes jobs on its own,
 * forever. Called in the transaction that adds the trigger, after `lockTenantTriggers`, so that
 * parallel creations are counted one after another.
 */
async function assertRoomForTrigger(core: Core, trx: Kysely<Database>, tenantId: number): Promise<void> {
  const most = core.config.maxTriggersPerTenant;
  const { n } = await trx
    .selectFrom('job_triggers')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('tenant_id', '=', tenantId)
    .where('enabled', '=', 1)
    .executeTakeFirstOrThrow();
  if (Number(n) >= most)
    throw conflict(
      `the tenant has ${Number(n)} interval triggers (Interval sync tasks included), the most allowed is ${most}; delete or cancel one first`,
    );
}

export async function createTrigger(core: Core, spec: TriggerSpec): Promise<TriggerRow> {
  if (!Number.isInteger(spec.intervalSeconds) || spec.intervalSeconds < MIN_INTERVAL || spec.intervalSeconds > MAX_INTERVAL) {
    throw badRequest(`interval must be a whole number of seconds from ${MIN_INTERVAL} to ${MAX_INTERVAL}`, 'interval');
  }
  const least = core.config.minTriggerInterval;
  if (spec.intervalSeconds < least)
    throw badRequest(`interval must be at least ${least} seconds (the server's minimum between two runs)`, 'interval');
  const params = checkedParams(core, spec.action, spec.params);
  if (spec.notifyHook) await checkHookUrl(core, spec.notifyHook, 'notifyHook');
  const row = await core.db.transaction().execute(async (trx) => {
    await lockTenantTriggers(trx, core.dialect, spec.tenantId);
    await assertRoomForTrigger(core, trx, spec.tenantId);
    return insertTrigger(core, trx, spec, params);
  });
  if (spec.runNow) await runDueTriggers(core);
  return row;
}

async function insertTrigger(core: Core, trx: Kysely<Database>, spec: TriggerSpec, params: unknown): Promise<TriggerRow> {
  const now = Date.now();
  const row = await trx
    .insertInto('job_triggers')
    .values({
      tenant_id: spec.tenantId,
      action: spec.action,
      params_json: JSON.stringify(params),
      description: spec.description ?? core.jobs.actions.get(spec.action)!.describe(params),
      reference_id: spec.referenceId ?? null,
      concurrency_key: spec.concurrencyKey ?? null,
      notify_hook: spec.notifyHook || null,
      created_by: spec.createdBy ?? null,
      interval_seconds: spec.intervalSeconds,
      next_run_at: spec.runNow ? now : now + spec.intervalSeconds * 1000,
      enabled: 1,
      created_at: now,
      updated_at: now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  if (spec.concurrencyKey === undefined) {
    await trx
      .updateTable('job_triggers')
      .set({ concurrency_key: `trigger:${row.id}` })
      .where('id', '=', row.id)
      .execute();
    row.concurrency_key = `trigger:${row.id}`;
  }
  return row;
}

export async function tenantTrigger(core: Core, tenantId: number, id: number): Promise<TriggerRow> {
  const row = await core.db
    .selectFrom('job_triggers')
    .selectAll()
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  if (!row) throw notFound(`trigger ${id}`);
  return row;
}

export async function listTriggers(core: Core, tenantId: number): Promise<TriggerRow[]> {
  return core.db.selectFrom('job_triggers').selectAll().where('tenant_id', '=', tenantId).orderBy('id').execute();
}

/** Stops a trigger's schedule (its jobs already made are not touched). */
export async function disableTrigger(core: Core, tenantId: number, id: number): Promise<TriggerRow> {
  await tenantTrigger(core, tenantId, id);
  return core.db
    .updateTable('job_triggers')
    .set({ enabled: 0, updated_at: Date.now() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function deleteTrigger(core: Core, tenantId: number, id: number): Promise<void> {
  await tenantTrigger(core, tenantId, id);
  await core.db.deleteFrom('job_triggers').where('id', '=', id).execute();
}

/** Makes the job of every due tick this process wins; returns how many it made. */
export async function runDueTriggers(core: Core): Promise<number> {
  const now = Date.now();
  const due = await core.db
    .selectFrom('job_triggers')
    .selectAll()
    .where('enabled', '=', 1)
    .where('next_run_at', '<=', now)
    .limit(100)
    .execute();
  let made = 0;
  for (const t of due) {
    // Ticks missed while nothing ran (all processes down) collapse into this one.
    const period = t.interval_seconds * 1000;
    const next = t.next_run_at + Math.max(1, Math.ceil((now - t.next_run_at + 1) / period)) * period;
    const won = await core.db
      .updateTable('job_triggers')
      .set({ next_run_at: next })
      .where('id', '=', t.id)
      .where('next_run_at', '=', t.next_run_at)
      .where('enabled', '=', 1)
      .executeTakeFirst();
    if (Number(won.numUpdatedRows) === 0) continue;
    // A trigger recorded before its action became route-only (no trigger can be made for one now).
    if (core.jobs.actions.get(t.action)?.direct === false) {
      core.log.warn(
        { triggerId: t.id, action: t.action },
        'interval trigger: its action is started only through its own route; tick skipped',
      );
      continue;
    }
    try {
      await submitJob(core, {
        tenantId: t.tenant_id,
        action: t.action,
        params: JSON.parse(t.params_json),
        trigger: 'interval',
        description: t.description,
        referenceId: t.reference_id,
        concurrencyKey: t.concurrency_key,
        notifyHook: t.notify_hook,
        createdBy: t.created_by,
        triggerId: t.id,
      });
      made++;
    } catch (err) {
      if (err instanceof JobKeyConflict)
        core.log.info({ triggerId: t.id, runningJob: err.existing.id }, 'interval trigger: previous run still going; tick skipped');
      else core.log.warn({ err, triggerId: t.id }, 'interval trigger: could not make its job');
    }
  }
  return made;
}
