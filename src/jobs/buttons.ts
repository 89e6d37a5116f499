import type { ActionCatalog } from './actions.ts';
import type { Job, JobButton } from './models.ts';

/** The follow-up actions a finished job offers, and the `customId` a client sends back to submit one. */

const RERUN: JobButton = { name: 'rerun', label: 'Run again', emoji: '🔄' };
const RETRY: JobButton = { name: 'retry', label: 'Retry', emoji: '🔁' };

/** `yunji::<button>::<job id>`: the customId a client sends back to `/mj/submit/action`. */
export const customIdOf = (job: Job, button: JobButton) => `yunji::${button.name}::${job.id}`;

export function parseCustomId(customId: string): { name: string; jobId: number } | undefined {
  const m = /^yunji::([a-z_]{1,40})::([1-9]\d{0,15})$/.exec(customId);
  return m ? { name: m[1]!, jobId: Number(m[2]) } : undefined;
}

/**
 * The buttons a job offers now: none until it has finished; `rerun` then, `retry` after a failure
 * or cancel, and the action's own. None for an action started only through its own route (a
 * follow-up would skip that route's checks) or one this build does not know.
 */
export function buttonsOf(job: Job, actions: ActionCatalog): JobButton[] {
  if (job.status !== 'completed' && job.status !== 'failed' && job.status !== 'cancelled') return [];
  const definition = actions.get(job.action);
  if (!definition?.direct) return [];
  const out = [RERUN];
  if (job.status !== 'completed') out.push(RETRY);
  for (const extra of definition.extraButtons ?? []) if (extra.offered(job)) out.push(extra.button);
  return out;
}
