import type { Core } from './core.ts';
import { Worker } from './worker.ts';

/**
 * The job engine of a process: listens to other processes' job events (PostgreSQL) and, unless
 * `YUNJI_WORKERS=0`, runs jobs. Returns how to stop it: running jobs get `graceMs` to finish and
 * are then handed back to the queue.
 */
export async function startJobEngine(core: Core): Promise<{ worker: Worker | undefined; stop(graceMs: number): Promise<void> }> {
  await core.jobs.events.listen();
  const worker = core.config.workers > 0 ? new Worker(core) : undefined;
  worker?.start();
  if (worker) core.log.info({ worker: worker.id, concurrency: core.config.workers }, 'job worker started');
  return { worker, stop: async (graceMs) => worker?.stop(graceMs) };
}
