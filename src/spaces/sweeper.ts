import type { Core } from '../jobs/core.ts';
import { sweepSpaces } from './spaces.ts';

/**
 * Sweeps every space once at start-up (also recounting each space's bytes, since a crash may have
 * left the count high), then every `sweepInterval` seconds; one sweep at a time per process.
 * Returns a function that stops it.
 */
export function startSweeper(core: Core): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const run = async (recount: boolean) => {
    try {
      const result = await sweepSpaces(core, { recount });
      if (result.removed > 0 || result.failed > 0 || recount) core.log.info(result, 'swept unreferenced bytes');
    } catch (err) {
      core.log.error({ err }, 'sweeping unreferenced bytes failed');
    }
    if (!stopped && core.config.sweepInterval > 0) {
      timer = setTimeout(() => void run(false), core.config.sweepInterval * 1000);
      timer.unref();
    }
  };
  void run(true);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
