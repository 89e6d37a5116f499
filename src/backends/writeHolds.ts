import { AppError } from '../lib/errors.ts';

/**
 * The holds of this process's writes in flight, which its sweep fence (spaces/writeFence.ts) keeps
 * every sweeper off. A write holds from before its first byte until it is acknowledged or has
 * failed, so every file it makes or touches has a time at or after the hold's start.
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

/** This process's published fence, as the fence keeper (spaces/writeFence.ts) last saw it. */
export interface Fence {
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
        throw new AppError(
          'unavailable',
          'this server could not keep its written bytes safe from the sweeper (its database was out of reach); send them again',
        );
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

/** Nothing written since this (epoch ms) may be swept: the start of the oldest write in flight, or now, less the clock lag. */
export function holdsFloor(now: number): number {
  let floor = now;
  for (const h of holds) floor = Math.min(floor, h.startedAt);
  return floor - CLOCK_LAG_MS;
}

/** Sets (or, with undefined, clears) the fence writes are checked against. */
export function setFence(state: Fence | undefined): void {
  fence = state;
}

/** The fence now in force, if any. */
export function currentFence(): Fence | undefined {
  return fence;
}
