import type { Core } from '../../jobs/core.ts';
import type { JobEvent } from '../../jobs/models.ts';
import { eventName, webhookPayload } from '../jobViews.ts';

/** One event as the event surfaces send it: the spec's `{cmd, code, msg, data}` (001-perform-sync). */
export interface EventMessage {
  cmd: string;
  code: 0;
  msg: string;
  data: Record<string, unknown>;
}

export function eventMessage(core: Core, e: JobEvent): EventMessage {
  const data = webhookPayload(core.jobs.actions, e);
  if (e.line) data.log = e.line;
  return { cmd: eventName(e.type, e.job, core.jobs.actions), code: 0, msg: e.line?.message ?? '', data };
}

/** Calls `send` with every job event of the tenant, from any process; returns how to stop. */
export function subscribeTenant(core: Core, tenantId: number, send: (m: EventMessage) => void): () => void {
  return core.jobs.events.on('event', (e) => {
    if (e.job.tenantId === tenantId) send(eventMessage(core, e));
  });
}
