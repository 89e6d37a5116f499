import type { DbCore } from '../db/core.ts';
import type { Db } from '../db/index.ts';
import { prepared } from '../db/prepared.ts';
import { forbidden, unauthorized } from '../lib/errors.ts';
import type { UserTenantStatus } from './models.ts';
import { roleAtLeast, weakerRole, type UserRole } from './roles.ts';
import { credentialCache } from './credentialCache.ts';
import { TOKEN_PREFIX, tokenHash } from './secrets.ts';

/** Who a request acts as: one user, in one current tenant, with one role. */
export interface Actor {
  kind: 'session' | 'api_key';
  /** The session's or API key's row id. */
  credentialId: number;
  token: string;
  userId: number;
  tenantId: number;
  role: UserRole;
  membershipStatus: UserTenantStatus;
  /** Epoch ms; null for API keys, which do not expire. */
  expiresAt: number | null;
}

// Every authenticated request runs one of these two.
const apiKeyByHash = prepared((db: Db, hash: string) =>
  db
    .selectFrom('api_keys as k')
    .innerJoin('memberships as m', (j) => j.onRef('m.user_id', '=', 'k.user_id').onRef('m.tenant_id', '=', 'k.tenant_id'))
    .select(['k.id', 'k.user_id', 'k.tenant_id', 'k.role as key_role', 'm.role as member_role', 'm.status'])
    .where('k.key_hash', '=', hash),
);
const sessionByHash = prepared((db: Db, hash: string) =>
  db
    .selectFrom('sessions as s')
    .innerJoin('memberships as m', (j) => j.onRef('m.user_id', '=', 's.user_id').onRef('m.tenant_id', '=', 's.current_tenant_id'))
    .select(['s.id', 's.user_id', 's.current_tenant_id', 's.expires_at', 'm.role', 'm.status'])
    .where('s.token_hash', '=', hash),
);

// last_used_at is informational: write it at most once a minute per key, not on every request.
const keyUseWritten = new Map<number, number>();
const KEY_USE_INTERVAL = 60_000;

/** Resolves a bearer token (session token or API key) to its actor, or throws 401. */
export async function authenticate(core: DbCore, token: string): Promise<Actor> {
  const now = Date.now();
  const cache = credentialCache(core);
  const cached = cache?.get(token)?.actor;
  if (cached) {
    if (cached.expiresAt !== null && cached.expiresAt <= now) throw unauthorized('session expired; log in again');
    return cached;
  }
  const generation = cache?.generation ?? 0;
  const actor = await readActor(core, token, now);
  cache?.storeActor(token, generation, actor);
  return actor;
}

async function readActor(core: DbCore, token: string, now: number): Promise<Actor> {
  const hash = tokenHash(token);
  if (token.startsWith(TOKEN_PREFIX.apiKey)) {
    const [row] = await apiKeyByHash(core.db, hash);
    if (!row) throw unauthorized('invalid or revoked API key');
    if ((keyUseWritten.get(row.id) ?? 0) < now - KEY_USE_INTERVAL) {
      keyUseWritten.set(row.id, now);
      await core.db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', row.id).execute();
    }
    return {
      kind: 'api_key',
      credentialId: row.id,
      token,
      userId: row.user_id,
      tenantId: row.tenant_id,
      role: weakerRole(row.key_role as UserRole, row.member_role as UserRole),
      membershipStatus: row.status as UserTenantStatus,
      expiresAt: null,
    };
  }
  const [row] = await sessionByHash(core.db, hash);
  if (!row) throw unauthorized('invalid or revoked session token');
  if (row.expires_at <= now) throw unauthorized('session expired; log in again');
  return {
    kind: 'session',
    credentialId: row.id,
    token,
    userId: row.user_id,
    tenantId: row.current_tenant_id,
    role: row.role as UserRole,
    membershipStatus: row.status as UserTenantStatus,
    expiresAt: row.expires_at,
  };
}

/** For anything inside the current tenant: the actor's membership there is active (403 otherwise). */
export function requireActiveMembership(actor: Actor): void {
  if (actor.membershipStatus !== 'active') throw forbidden(`your membership in this tenant is ${actor.membershipStatus}`);
}

/** For anything inside the current tenant: an active membership with at least `minimum`. */
export function requireRole(actor: Actor, minimum: UserRole): void {
  requireActiveMembership(actor);
  if (!roleAtLeast(actor.role, minimum)) {
    throw forbidden(
      minimum === 'member' ? `role '${actor.role}' is read-only` : `this needs role '${minimum}' or above (yours: '${actor.role}')`,
    );
  }
}
