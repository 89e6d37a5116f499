import type { Core } from './core.ts';
import type { JobEvent } from './models.ts';
import { enqueueDelivery } from './webhooks.ts';

/**
 * Tells everyone about a job event: subscribers (WebSocket, SSE, waiting requests) in every
 * process, and the job's webhook (state changes and progress; log lines are not posted), unless
 * the delivery was recorded with the change itself.
 */
export async function announce(core: Core, event: JobEvent, options: { deliveryRecorded?: boolean } = {}): Promise<void> {
  const record = event.type !== 'log' && !options.deliveryRecorded;
  await Promise.all([core.jobs.events.publish(event), record ? enqueueDelivery(core, event) : undefined]);
}
