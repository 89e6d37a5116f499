import type { DbCore } from '../db/core.ts';
import type { Actor } from './actor.ts';
import { roleAtLeast, weakerRole, type UserRole } from './roles.ts';
import { tokenHash } from './secrets.ts';

/**
 * Re-checks actors authenticated earlier (by long-lived connections: event streams) against the
 * database, never the credential cache, many at a time.
 */

/** Why an actor may no longer act as it did: its credential is gone, it moved tenant, or its membership no longer allows it. */
export interface Lapse {
  reason: 'revoked' | 'moved' | 'forbidden';
  message: string;
}

interface Standing {
  tenantId: number;
  role: UserRole;
  status: string;
  expiresAt: number | null;
}

/** Hashes per query: well under either database's limit on bound parameters. */
const CHUNK = 500;

async function standings(core: DbCore, actors: readonly Actor[]): Promise<Map<string, Standing>> {
  const found = new Map<string, Standing>();
  const byKind = (kind: Actor['kind']) => [...new Set(actors.filter((a) => a.kind === kind).map((a) => tokenHash(a.token)))];
  const sessions = byKind('session');
  const keys = byKind('api_key');
  for (let i = 0; i < sessions.length; i += CHUNK) {
    const rows = await core.db
      .selectFrom('sessions as s')
      .innerJoin('memberships as m', (j) => j.onRef('m.user_id', '=', 's.user_id').onRef('m.tenant_id', '=', 's.current_tenant_id'))
      .select(['s.token_hash', 's.current_tenant_id', 's.expires_at', 'm.role', 'm.status'])
      .where('s.token_hash', 'in', sessions.slice(i, i + CHUNK))
      .execute();
    for (const r of rows)
      found.set(r.token_hash, { tenantId: r.current_tenant_id, role: r.role as UserRole, status: r.status, expiresAt: r.expires_at });
  }
  for (let i = 0; i < keys.length; i += CHUNK) {
    const rows = await core.db
      .selectFrom('api_keys as k')
      .innerJoin('memberships as m', (j) => j.onRef('m.user_id', '=', 'k.user_id').onRef('m.tenant_id', '=', 'k.tenant_id'))
      .select(['k.key_hash', 'k.tenant_id', 'k.role as key_role', 'm.role as member_role', 'm.status'])
      .where('k.key_hash', 'in', keys.slice(i, i + CHUNK))
      .execute();
    for (const r of rows) {
      found.set(r.key_hash, {
        tenantId: r.tenant_id,
        role: weakerRole(r.key_role as UserRole, r.member_role as UserRole),
        status: r.status,
        expiresAt: null,
      });
    }
  }
  return found;
}

/** The actors that no longer authenticate, or no longer act in the tenant they were authenticated in with at least `minimum`. */
export async function lapsedActors(
  core: DbCore,
  actors: readonly Actor[],
  minimum: UserRole,
  now = Date.now(),
): Promise<Map<Actor, Lapse>> {
  const found = await standings(core, actors);
  const lapsed = new Map<Actor, Lapse>();
  for (const actor of actors) {
    const s = found.get(tokenHash(actor.token));
    if (!s)
      lapsed.set(actor, {
        reason: 'revoked',
        message: actor.kind === 'session' ? 'the session ended (logged out, or removed from the tenant)' : 'the API key was revoked',
      });
    else if (s.expiresAt !== null && s.expiresAt <= now)
      lapsed.set(actor, { reason: 'revoked', message: 'the session expired; log in again' });
    else if (s.tenantId !== actor.tenantId) lapsed.set(actor, { reason: 'moved', message: 'the session switched to another tenant' });
    else if (s.status !== 'active') lapsed.set(actor, { reason: 'forbidden', message: `your membership in this tenant is ${s.status}` });
    else if (!roleAtLeast(s.role, minimum))
      lapsed.set(actor, { reason: 'forbidden', message: `this needs role '${minimum}' or above (yours: '${s.role}')` });
  }
  return lapsed;
}
