import type { Core } from '../core.ts';
import type { JobEvent } from './models.ts';
import { enqueueDelivery } from './webhooks.ts';

/**
 * Tells everyone about a job event: subscribers (WebSocket, SSE, waiting requests) in every
 * process, and the job's webhook (state changes and progress; log lines are not posted).
 */
export async function announce(core: Core, event: JobEvent): Promise<void> {
  await Promise.all([core.jobs.events.publish(event), event.type === 'log' ? undefined : enqueueDelivery(core, event)]);
}
