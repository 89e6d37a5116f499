import { authenticate, type Actor } from '../../accounts/actor.ts';
import type { Core } from '../../core.ts';
import { AppError } from '../../errors.ts';
import type { JobEvent } from '../../jobs/models.ts';
import { eventName } from '../../jobs/views.ts';
import { webhookPayload } from '../../jobs/webhooks.ts';

/** One event as the event surfaces send it: the spec's `{cmd, code, msg, data}` (001-perform-sync). */
export interface EventMessage {
  cmd: string;
  code: 0;
  msg: string;
  data: Record<string, unknown>;
}

export function eventMessage(core: Core, e: JobEvent): EventMessage {
  const data = webhookPayload(core, e);
  if (e.line) data.log = e.line;
  return { cmd: eventName(e.type, e.job, core.jobs.actions), code: 0, msg: e.line?.message ?? '', data };
}

/** How often an open stream checks its credential again. */
const RECHECK_MS = 2000;

/**
 * Calls `send` with every job event of the actor's tenant, from any process, while the actor's
 * credential still acts there as an active member: it is checked again every few seconds, and
 * `end` is called once it does not (revoked, expired, logged out, moved to another tenant,
 * disabled or removed). Returns how to stop.
 */
export function subscribeTenant(core: Core, actor: Actor, send: (m: EventMessage) => void, end: (reason: string) => void): () => void {
  const off = core.jobs.events.on('event', (e) => {
    if (e.job.tenantId === actor.tenantId) send(eventMessage(core, e));
  });
  const recheck = setInterval(() => {
    authenticate(core, actor.token)
      .then(
        (now) => {
          if (now.tenantId !== actor.tenantId) end('the session has moved to another tenant');
          else if (now.membershipStatus !== 'active') end(`your membership in this tenant is ${now.membershipStatus}`);
        },
        (err: unknown) => end(err instanceof AppError ? err.message : 'the credential could not be checked'),
      )
      .catch((err: unknown) => core.log.warn({ err }, 'event stream: ending it failed'));
  }, RECHECK_MS);
  recheck.unref();
  return () => {
    off();
    clearInterval(recheck);
  };
}
