import type { DbCore } from '../db/core.ts';
import { onWrite, uncommittedWritesPossible } from '../db/observe.ts';
import type { Actor } from './actor.ts';
import type { AuthSession } from './models.ts';

/**
 * Per-process memory of verified tokens, so an authenticated request need not read the database.
 * Correctness rules:
 * - any write by this process to an accounts table empties it (before and after the write runs),
 *   so a logout, revocation or role change here applies to the very next request;
 * - an answer read while a write may be uncommitted (a transaction open on SQLite's writer) or
 *   while a write happened during the read is used once, never kept;
 * - other processes' writes are not seen, so entries live at most `authCacheTtl` ms.
 * Only on SQLite, whose single writer makes the second rule observable; on PostgreSQL it stays off
 * until revocations are broadcast between processes.
 */
const ACCOUNT_TABLES = new Set(['users', 'tenants', 'memberships', 'sessions', 'api_keys']);
const MAX_ENTRIES = 10_000;

interface Entry {
  actor: Actor;
  view?: AuthSession;
  storedAt: number;
}

export class CredentialCache {
  #generation = 0;
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly writesInFlight: () => boolean,
  ) {}

  invalidate(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /** Taken before a database read; `store` keeps the answer only if nothing was written since. */
  get generation(): number {
    return this.#generation;
  }

  get(token: string): Entry | undefined {
    const entry = this.#entries.get(token);
    if (entry && Date.now() - entry.storedAt < this.ttlMs) return entry;
    if (entry) this.#entries.delete(token);
    return undefined;
  }

  storeActor(token: string, generation: number, actor: Actor): void {
    if (generation !== this.#generation || this.writesInFlight()) return;
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    this.#entries.set(token, { actor, storedAt: Date.now() });
  }

  storeView(token: string, generation: number, actor: Actor, view: AuthSession): void {
    const entry = this.#entries.get(token);
    if (!entry || entry.actor !== actor || generation !== this.#generation || this.writesInFlight()) return;
    entry.view = view;
  }
}

const caches = new WeakMap<object, CredentialCache | null>();

/** The cache of this database, or undefined where it is off. */
export function credentialCache(core: DbCore): CredentialCache | undefined {
  let cache = caches.get(core.db);
  if (cache === undefined) {
    cache =
      core.dialect === 'sqlite' && core.config.authCacheTtl > 0
        ? new CredentialCache(core.config.authCacheTtl, () => uncommittedWritesPossible(core.db))
        : null;
    if (cache) {
      const c = cache;
      onWrite(core.db, (tables) => {
        if (tables.some((t) => ACCOUNT_TABLES.has(t))) c.invalidate();
      });
    }
    caches.set(core.db, cache);
  }
  return cache ?? undefined;
}
