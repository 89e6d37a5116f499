import type { Core } from '../jobs/core.ts';
import { dropStaleClaims } from '../spaces/shardGuard.ts';
import { allSpaces, setSpaceBytes } from '../spaces/spaces.ts';
import { sweepCutoff } from '../spaces/writeFence.ts';
import { shardInUse } from './spaceUse.ts';

/**
 * Removes bytes no object references any more (older than the grace period and than every write
 * in flight), and what interrupted writes left, in every space. `recount` also sets each space's
 * byte count from what it holds.
 */
export async function sweepSpaces(
  core: Core,
  options: { recount?: boolean } = {},
): Promise<{ removed: number; bytes: number; failed: number }> {
  // Every space: one without a shard store still gets partial files from interrupted syncs and exports.
  const spaces = await allSpaces(core);
  const total = { removed: 0, bytes: 0, failed: 0 };
  // Older than the grace and than every write in flight, in any process; a write that begins
  // later makes only files newer than this.
  const cutoff = await sweepCutoff(core);
  await dropStaleClaims(core, cutoff);
  for (const entry of spaces) {
    try {
      const space = entry.open();
      await space.backend.cleanup(cutoff);
      if (!space.store) continue;
      const result = await space.store.sweep(cutoff, (hash) => shardInUse(core, space.id, hash));
      if (options.recount) await setSpaceBytes(core, space.id, result.kept);
      total.removed += result.removed;
      total.bytes += result.bytes;
    } catch (err) {
      total.failed++;
      core.log.warn({ err, spaceId: entry.id }, 'sweeping a user space failed');
    }
  }
  return total;
}

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
