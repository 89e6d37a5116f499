import type { DbCore } from '../db/core.ts';
import type { Db } from '../db/index.ts';
import { prepared } from '../db/prepared.ts';
import { badRequest, forbidden, notFound, unauthorized } from '../lib/errors.ts';
import type { Actor } from './actor.ts';
import { credentialCache } from './credentialCache.ts';
import { type AuthSession } from './models.ts';
import { iso } from '../lib/time.ts';
import { memberUserProfile, membersWithUsers, normalizeEmail, toMembership } from './records.ts';
import type { UserRole } from './roles.ts';
import { checkPassword } from './passwords.ts';
import { newToken, TOKEN_PREFIX, tokenHash } from './secrets.ts';

const INVALID_LOGIN = 'invalid email or password';

// One query for the whole view: the user and every membership of theirs, with tenants.
const allMemberships = prepared((db: Db, userId: number) => membersWithUsers(db).where('m.user_id', '=', userId));
// An API key lives in one tenant; it does not reveal the creator's other tenants.
const keyMembership = prepared((db: Db, userId: number, tenantId: number) =>
  membersWithUsers(db).where('m.user_id', '=', userId).where('m.tenant_id', '=', tenantId),
);

/** The AuthSession view of an actor: who they are, where they are, and where else they may go. */
export async function describeSession(core: DbCore, actor: Actor): Promise<AuthSession> {
  const cache = credentialCache(core);
  const cached = cache?.get(actor.token);
  if (cached?.view && cached.actor === actor) return cached.view;
  const generation = cache?.generation ?? 0;
  const view = await readSessionView(core, actor);
  cache?.storeView(actor.token, generation, actor, view);
  return view;
}

async function readSessionView(core: DbCore, actor: Actor): Promise<AuthSession> {
  const rows =
    actor.kind === 'api_key' ? await keyMembership(core.db, actor.userId, actor.tenantId) : await allMemberships(core.db, actor.userId);
  const memberships = rows.map(toMembership);
  const current = memberships.find((m) => m.tenant_id === actor.tenantId);
  if (!current || !rows[0]) throw unauthorized();
  return {
    token: actor.token,
    expires_at: actor.expiresAt === null ? null : iso(actor.expiresAt),
    user: memberUserProfile(rows[0]),
    current_tenant: current.tenant,
    current_role: actor.role,
    memberships,
  };
}

/** Creates a session for a user in a tenant they are an active member of. */
export async function startSession(core: DbCore, userId: number, tenantId: number, role: UserRole): Promise<AuthSession> {
  const token = newToken(TOKEN_PREFIX.session);
  const now = Date.now();
  const expiresAt = now + core.config.sessionTtl * 1000;
  const { id } = await core.db
    .insertInto('sessions')
    .values({ token_hash: tokenHash(token), user_id: userId, current_tenant_id: tenantId, created_at: now, expires_at: expiresAt })
    .returning('id')
    .executeTakeFirstOrThrow();
  // Expired sessions of this user are dead weight; logins are rare enough to sweep them here.
  await core.db.deleteFrom('sessions').where('user_id', '=', userId).where('expires_at', '<=', now).execute();
  return describeSession(core, {
    kind: 'session',
    credentialId: id,
    token,
    userId,
    tenantId,
    role,
    membershipStatus: 'active',
    expiresAt,
  });
}

export async function login(core: DbCore, emailInput: string, password: string, clientIp: string): Promise<AuthSession> {
  const email = normalizeEmail(emailInput);
  const user = await core.db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();
  // An unknown email is throttled and checked (against a decoy) all the same, so it answers alike.
  if (!(await checkPassword(core, email, user, password, clientIp)) || !user) throw unauthorized(INVALID_LOGIN);

  const home = await core.db
    .selectFrom('memberships')
    .select(['tenant_id', 'role'])
    .where('user_id', '=', user.id)
    .where('status', '=', 'active')
    .orderBy('created_at')
    .orderBy('tenant_id')
    .executeTakeFirst();
  if (!home) throw forbidden('this account has no active tenant membership');
  await core.db.updateTable('users').set({ last_login_at: Date.now() }).where('id', '=', user.id).execute();
  return startSession(core, user.id, home.tenant_id, home.role as UserRole);
}

export async function logout(core: DbCore, actor: Actor): Promise<void> {
  if (actor.kind !== 'session') throw badRequest('an API key is not a session; revoke it with DELETE /api/keys/{id}');
  await core.db.deleteFrom('sessions').where('id', '=', actor.credentialId).execute();
}

/** Moves a session to another tenant the user is an active member of (else 404: no existence leak). */
export async function switchTenant(core: DbCore, actor: Actor, tenantId: number): Promise<AuthSession> {
  if (actor.kind !== 'session') throw badRequest('an API key is bound to its tenant and cannot switch');
  const membership = await core.db
    .selectFrom('memberships')
    .select(['role', 'status'])
    .where('user_id', '=', actor.userId)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  if (!membership || membership.status !== 'active') throw notFound('tenant');
  await core.db.updateTable('sessions').set({ current_tenant_id: tenantId }).where('id', '=', actor.credentialId).execute();
  return describeSession(core, { ...actor, tenantId, role: membership.role as UserRole, membershipStatus: 'active' });
}
