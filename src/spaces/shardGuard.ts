import { setTimeout as sleep } from 'node:timers/promises';
import type { Core } from '../jobs/core.ts';
import type { ShardGuard } from '../backends/shardStore.ts';

/**
 * The database side of the handshake between the sweeper and a write that finds its content
 * stored already (docs/DECISIONS.md, "What the fence does not close"). Each side writes its own
 * row, committed, then reads the other's: a sweeper records its intent (`sweep_intents`) before
 * it asks whether anything uses the shard (pins included), a write pins the shard (`shard_pins`)
 * before it looks for an intent. So a sweep that missed the pin is seen by the write, which waits
 * for it to end and then looks whether the shard is still there. A sweeper renews its intent every
 * third of YUNJI_SWEEP_FENCE until it is done, and removes only while its last renewal is younger
 * than half of that; an intent not renewed for YUNJI_SWEEP_FENCE is taken for a dead sweeper's. A
 * pin lasts until a sweep's cutoff passes it: no sooner than the end of the write that made it
 * (writeFence.ts), whose committed rows then keep the shard.
 */
export function shardGuard(core: Core, spaceId: number): ShardGuard {
  const staleMs = core.config.sweepFence * 1000;
  const intentOf = (hash: string) =>
    core.db.selectFrom('sweep_intents').select('renewed_at').where('space_id', '=', spaceId).where('hash', '=', hash).executeTakeFirst();
  return {
    async intend(hash) {
      let at = Date.now();
      const result = await core.db
        .insertInto('sweep_intents')
        .values({ space_id: spaceId, hash, renewed_at: at })
        .onConflict((oc) => oc.columns(['space_id', 'hash']).doNothing())
        .executeTakeFirst();
      // Another sweep has the shard: it is left to that one.
      if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) return undefined;
      // Renewed while the removal lasts (a slow backend call), so writes keep waiting for it.
      const renew = async () => {
        const now = Date.now();
        const renewed = await core.db
          .updateTable('sweep_intents')
          .set({ renewed_at: now })
          .where('space_id', '=', spaceId)
          .where('hash', '=', hash)
          .where('renewed_at', '=', at)
          .executeTakeFirst();
        if (Number(renewed.numUpdatedRows) > 0) at = now;
      };
      let renewing = Promise.resolve();
      const timer = setInterval(() => {
        renewing = renewing.then(renew).catch((err: unknown) => core.log.warn({ err, spaceId, hash }, 'renewing a sweep intent failed'));
      }, staleMs / 3);
      timer.unref();
      return {
        fresh: () => Date.now() - at < staleMs / 2,
        // Its own row only: one taken for a dead sweeper's may have been replaced by another sweep's.
        done: async () => {
          clearInterval(timer);
          await renewing;
          await core.db
            .deleteFrom('sweep_intents')
            .where('space_id', '=', spaceId)
            .where('hash', '=', hash)
            .where('renewed_at', '=', at)
            .execute();
        },
      };
    },
    async pin(hash) {
      const at = Date.now();
      await core.db
        .insertInto('shard_pins')
        .values({ space_id: spaceId, hash, created_at: at })
        .onConflict((oc) => oc.columns(['space_id', 'hash']).doUpdateSet({ created_at: at }))
        .execute();
      // A removal in progress ends within one backend call; a dead sweeper's intent after staleMs.
      for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
        const intent = await intentOf(hash);
        if (!intent || Date.now() - Number(intent.renewed_at) > staleMs) return;
        await sleep(wait);
      }
    },
  };
}

/** Drops pins older than a sweep's cutoff (their writes have ended) and intents of dead sweepers. */
export async function dropStaleClaims(core: Core, cutoff: number): Promise<void> {
  await core.db.deleteFrom('shard_pins').where('created_at', '<', cutoff).execute();
  await core.db
    .deleteFrom('sweep_intents')
    .where('renewed_at', '<', Date.now() - core.config.sweepFence * 1000)
    .execute();
}

/** Whether a write in flight has pinned these bytes (see `shardGuard`). */
export async function isPinned(core: Core, spaceId: number, hash: string): Promise<boolean> {
  const pin = await core.db
    .selectFrom('shard_pins')
    .select('hash')
    .where('space_id', '=', spaceId)
    .where('hash', '=', hash)
    .executeTakeFirst();
  return pin !== undefined;
}
