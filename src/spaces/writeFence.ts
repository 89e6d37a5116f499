import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import { currentFence, holdsFloor, setFence, type Fence } from '../backends/writeHolds.ts';
import type { Core } from '../jobs/core.ts';

/**
 * Keeps every sweeper off the bytes of this process's writes in flight, however long they take
 * (docs/SECURITY.md, "Data safety"). A write holds the fence (backends/writeHolds.ts) from before
 * its first byte until it is acknowledged or has failed, so every file it makes or touches has a
 * time at or after the hold's start. The process publishes a fence row: nothing written since
 * `floor` (the start of its oldest write in flight, or now) may be swept until `expires_at`. It
 * renews the row every third of YUNJI_SWEEP_FENCE, and a write that starts after a renewal starts
 * after the floor then published, so a write costs no database write of its own. A sweeper takes
 * only what is older than both its grace period and the floor of every live fence; it ignores
 * expired ones (their process died, or stalled), so a write whose process could not keep its fence
 * live since the write began must not be acknowledged: `assertSafe` refuses it.
 */

/**
 * Publishes this process's fence before it may write (throws if the database cannot take it) and
 * renews it until the returned function stops it and removes the row.
 */
export async function startWriteFence(core: Core): Promise<() => Promise<void>> {
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const ttlMs = core.config.sweepFence * 1000;
  const state: Fence = { owner, ttlMs, expiresAt: 0, liveSince: Infinity };
  const renew = async () => {
    const now = Date.now();
    const row = { floor: holdsFloor(now), expires_at: now + ttlMs };
    await core.db
      .insertInto('sweep_fences')
      .values({ owner, ...row })
      .onConflict((oc) => oc.column('owner').doUpdateSet(row))
      .execute();
    // Published after the last row expired: a sweeper may have taken bytes of writes begun before now.
    const published = Date.now();
    if (published >= state.expiresAt) state.liveSince = published;
    state.expiresAt = row.expires_at;
  };
  await renew();
  setFence(state);
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    renew()
      .catch((err: unknown) => core.log.warn({ err }, 'renewing the sweep fence failed'))
      .finally(() => (busy = false));
  }, ttlMs / 3);
  timer.unref();
  return async () => {
    clearInterval(timer);
    if (currentFence() === state) setFence(undefined);
    await core.db.deleteFrom('sweep_fences').where('owner', '=', owner).execute();
  };
}

/**
 * What a sweep may remove: files older than this (epoch ms), the grace period and every live
 * fence's floor (this process's own as it is now, not as last published). Fences that expired
 * long ago are dropped on the way.
 */
export async function sweepCutoff(core: Core): Promise<number> {
  const now = Date.now();
  await core.db
    .deleteFrom('sweep_fences')
    .where('expires_at', '<', now - core.config.sweepFence * 1000)
    .execute();
  let others = core.db
    .selectFrom('sweep_fences')
    .select(sql<number | string | null>`min(floor)`.as('floor'))
    .where('expires_at', '>', now);
  const fence = currentFence();
  if (fence) others = others.where('owner', '!=', fence.owner);
  const row = await others.executeTakeFirst();
  const floor = row?.floor === null || row?.floor === undefined ? Infinity : Number(row.floor);
  return Math.min(now - core.config.shardGrace * 1000, holdsFloor(now), floor);
}
