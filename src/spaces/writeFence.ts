import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Core } from '../jobs/core.ts';
import { AppError } from '../lib/errors.ts';

/**
 * Keeps every sweeper off the bytes of this process's writes in flight, however long they take
 * (docs/SECURITY.md, "Data safety"). A write holds the fence from before its first byte until it
 * is acknowledged or has failed, so every file it makes or touches has a time at or after the
 * hold's start. The process publishes a fence row: nothing written since `floor` (the start of
 * its oldest write in flight, or now) may be swept until `expires_at`. It renews the row every
 * third of YUNJI_SWEEP_FENCE, and a write that starts after a renewal starts after the floor then
 * published, so a write costs no database write of its own. A sweeper takes only what is older
 * than both its grace period and the floor of every live fence; it ignores expired ones (their
 * process died, or stalled), so a write whose process could not keep its fence live since the
 * write began must not be acknowledged: `assertSafe` refuses it.
 */

/** How far behind this process's clock a file's time may be (a file system's coarse clock, S3's times in whole seconds). */
const CLOCK_LAG_MS = 2000;

export interface WriteHold {
  readonly startedAt: number;
  /** Throws (503) unless this process's fence has covered the write since it began, with time to spare. */
  assertSafe(): void;
  /** Ends the hold (again: nothing). */
  release(): void;
}

interface Fence {
  owner: string;
  ttlMs: number;
  /** When the row published last expires (this process's clock). */
  expiresAt: number;
  /** Since when the fence has been live without a gap: writes begun before it are not covered. */
  liveSince: number;
}

const holds = new Set<WriteHold>();
let fence: Fence | undefined;

/** Starts a write's hold on the sweeper; `release` it once the write is acknowledged or has failed. */
export function holdWrites(): WriteHold {
  const hold: WriteHold = {
    startedAt: Date.now(),
    assertSafe() {
      const now = Date.now();
      if (!fence || hold.startedAt < fence.liveSince || now > fence.expiresAt - fence.ttlMs / 3) {
        throw new AppError('unavailable', 'this server could not keep its written bytes safe from the sweeper (its database was out of reach); send them again');
      }
    },
    release: () => void holds.delete(hold),
  };
  holds.add(hold);
  return hold;
}

/** Runs `write` under a hold, released however it ends. */
export async function withHold<T>(write: (hold: WriteHold) => Promise<T>): Promise<T> {
  const hold = holdWrites();
  try {
    return await write(hold);
  } finally {
    hold.release();
  }
}

function floorNow(now: number): number {
  let floor = now;
  for (const h of holds) floor = Math.min(floor, h.startedAt);
  return floor - CLOCK_LAG_MS;
}

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
    const row = { floor: floorNow(now), expires_at: now + ttlMs };
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
  fence = state;
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
    if (fence === state) fence = undefined;
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
  let others = core.db.selectFrom('sweep_fences').select(sql<number | string | null>`min(floor)`.as('floor')).where('expires_at', '>', now);
  if (fence) others = others.where('owner', '!=', fence.owner);
  const row = await others.executeTakeFirst();
  const floor = row?.floor === null || row?.floor === undefined ? Infinity : Number(row.floor);
  return Math.min(now - core.config.shardGrace * 1000, floorNow(now), floor);
}
