import type { FastifyRequest } from 'fastify';
import { requireRole, type Actor } from '../../accounts/actor.ts';
import { lapsedActors, type Lapse } from '../../accounts/standing.ts';
import type { Core } from '../../jobs/core.ts';
import { AppError, forbidden } from '../../lib/errors.ts';
import { actorOf, requestCredential } from '../auth.ts';

/**
 * The open event streams (`/ws`, `/api/events`) of this process: each holds a slot of its user
 * (at most YUNJI_MAX_STREAMS_PER_USER), and every RECHECK_MS all of them are re-checked against the
 * database in one pass, so a stream whose credential is revoked, or whose membership no longer
 * allows reading, is ended within seconds.
 */
const RECHECK_MS = 2000;

export interface StreamSlot {
  readonly actor: Actor;
  /** From now on the stream is re-checked; `end` is called once if its credential lapses (the slot is freed first). */
  watch(end: (lapse: Lapse) => void): void;
  /** Frees the slot; safe to call more than once. */
  release(): void;
}

class OpenStreams {
  readonly #perUser = new Map<number, number>();
  readonly #watched = new Map<StreamSlot, (lapse: Lapse) => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly core: Core) {}

  admit(actor: Actor): StreamSlot {
    const limit = this.core.config.maxStreamsPerUser;
    const held = this.#perUser.get(actor.userId) ?? 0;
    if (limit > 0 && held >= limit) {
      throw new AppError(
        'rate_limited',
        `at most ${limit} event streams may be open per user (YUNJI_MAX_STREAMS_PER_USER); close one first`,
      );
    }
    this.#perUser.set(actor.userId, held + 1);
    let released = false;
    const slot: StreamSlot = {
      actor,
      watch: (end) => {
        if (released) return;
        this.#watched.set(slot, end);
        this.#schedule();
      },
      release: () => {
        if (released) return;
        released = true;
        this.#watched.delete(slot);
        const left = (this.#perUser.get(actor.userId) ?? 1) - 1;
        if (left > 0) this.#perUser.set(actor.userId, left);
        else this.#perUser.delete(actor.userId);
      },
    };
    return slot;
  }

  #schedule(): void {
    if (this.#timer || this.#watched.size === 0) return;
    this.#timer = setTimeout(() => void this.#recheck(), RECHECK_MS);
    this.#timer.unref();
  }

  async #recheck(): Promise<void> {
    const slots = [...this.#watched.keys()];
    try {
      const lapsed = await lapsedActors(
        this.core,
        slots.map((s) => s.actor),
        'viewer',
      );
      for (const slot of slots) {
        const lapse = lapsed.get(slot.actor);
        const end = this.#watched.get(slot);
        if (!lapse || !end) continue;
        slot.release();
        end(lapse);
      }
    } catch (err) {
      // The database is unreachable: streams stay until a re-check can tell.
      this.core.log.warn({ err }, 'event streams: re-checking credentials failed');
    } finally {
      this.#timer = undefined;
      this.#schedule();
    }
  }
}

const registries = new WeakMap<Core, OpenStreams>();

function openStreams(core: Core): OpenStreams {
  let streams = registries.get(core);
  if (!streams) registries.set(core, (streams = new OpenStreams(core)));
  return streams;
}

/** Whether `origin` (an `Origin` header) is exactly the origin the request was addressed to (with YUNJI_TRUST_PROXY, as the proxy forwarded it). */
function isOwnOrigin(request: FastifyRequest, origin: string): boolean {
  try {
    return new URL(origin).origin === origin && origin === new URL(`${request.protocol}://${request.host}`).origin;
  } catch {
    return false;
  }
}

/**
 * Admits a new stream of the request's actor (viewer and above), or throws before it starts: 403
 * for the session cookie sent from another origin (or, when `originRequired`, without an Origin),
 * 429 past the user's limit of open streams.
 */
export function admitStream(core: Core, request: FastifyRequest, originRequired: boolean): StreamSlot {
  const actor = actorOf(request);
  requireRole(actor, 'viewer');
  if (requestCredential(request)?.from === 'cookie') {
    const origin = request.headers.origin;
    if (origin === undefined ? originRequired : !isOwnOrigin(request, origin)) {
      throw forbidden(
        "a stream authenticated by the session cookie must come from this server's own origin (Origin header); other clients send the token as a header or ?token=",
      );
    }
  }
  return openStreams(core).admit(actor);
}

/** WebSocket close codes of a stream ended because its credential lapsed. */
export const LAPSE_CLOSE_CODE: Record<Lapse['reason'], number> = { revoked: 4001, moved: 4002, forbidden: 4003 };
