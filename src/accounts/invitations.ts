import type { Core } from '../core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { lockTenant } from '../db/locks.ts';
import { AppError, badRequest, conflict, forbidden, notFound, unauthorized } from '../errors.ts';
import { requireRole, type Actor } from './actor.ts';
import { type AcceptInvitationRequest, type AuthSession, type InviteUserRequest, type UserInvitationResult } from './models.ts';
import { iso } from '../time.ts';
import { checkPassword } from './passwords.ts';
import { getMembership, getUserProfile, normalizeEmail, profileInTenant } from './records.ts';
import { roleAtLeast, type UserRole } from './roles.ts';
import { startSession } from './sessions.ts';
import { hashPassword, newToken, TOKEN_PREFIX, tokenHash } from './secrets.ts';
import { insertUser } from './users.ts';

/**
 * Invites an email into the current tenant. An unknown email gets an account without a password;
 * a pending invitation is replaced (new token, new role). No mail is sent: the caller hands the
 * token to the invitee. The answer is the same whether an account existed for the email or not
 * (`created_user` says whether the email is new to this tenant).
 */
export async function inviteUser(core: Core, actor: Actor, request: InviteUserRequest): Promise<UserInvitationResult> {
  requireRole(actor, 'admin');
  if (!roleAtLeast(actor.role, request.role)) {
    throw forbidden(`you cannot grant role '${request.role}', which is above yours ('${actor.role}')`);
  }
  const email = normalizeEmail(request.email);
  const token = newToken(TOKEN_PREFIX.invitation);
  const now = Date.now();
  const expiresAt = now + core.config.invitationTtl * 1000;
  let result: { userId: number; newMember: boolean };
  try {
    result = await core.db.transaction().execute(async (trx) => {
      await lockTenant(trx, core.dialect, actor.tenantId);
      const user = (await trx.selectFrom('users').select(['id']).where('email', '=', email).executeTakeFirst()) ?? (await insertUser(trx, email, null));
      const membership = await trx
        .selectFrom('memberships')
        .select(['id', 'status'])
        .where('tenant_id', '=', actor.tenantId)
        .where('user_id', '=', user.id)
        .executeTakeFirst();
      if (membership?.status === 'active') throw conflict(`${email} is already an active member of this tenant`);
      if (membership?.status === 'disabled') {
        throw conflict(`${email} is a disabled member of this tenant; re-enable them with PATCH /api/users/${user.id}`);
      }
      if (membership) {
        await trx.updateTable('memberships').set({ role: request.role, invited_by: actor.userId, updated_at: now }).where('id', '=', membership.id).execute();
        await trx.deleteFrom('invitations').where('tenant_id', '=', actor.tenantId).where('user_id', '=', user.id).execute();
      } else {
        await trx
          .insertInto('memberships')
          .values({ tenant_id: actor.tenantId, user_id: user.id, role: request.role, status: 'invited', invited_by: actor.userId, created_at: now, updated_at: now })
          .execute();
      }
      await trx
        .insertInto('invitations')
        .values({
          tenant_id: actor.tenantId,
          user_id: user.id,
          role: request.role,
          token_hash: tokenHash(token),
          invited_by: actor.userId,
          created_at: now,
          expires_at: expiresAt,
          accepted_at: null,
        })
        .execute();
      return { userId: user.id, newMember: !membership };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`${email} is being invited by another request; try again`);
    throw err;
  }
  const [user, membership] = await Promise.all([getUserProfile(core.db, result.userId), getMembership(core.db, actor.tenantId, result.userId)]);
  if (!user || !membership) throw notFound('user');
  return { user: profileInTenant(user, membership), membership, invitation_token: token, invitation_expires_at: iso(expiresAt), created_user: result.newMember };
}

/**
 * Completes an invitation and logs the invitee in to the tenant. A new account must choose a
 * password here; an existing account proves itself with its password (checked and throttled like a
 * login) or with a session of that same user. An API key is not a login: it proves nothing here, so
 * neither an invitation token nor a key is ever turned into a session of somebody's existing account.
 */
export async function acceptInvitation(core: Core, request: AcceptInvitationRequest, clientIp: string, actor?: Actor): Promise<AuthSession> {
  const invitation = await core.db
    .selectFrom('invitations as i')
    .innerJoin('users as u', 'u.id', 'i.user_id')
    .select(['i.id', 'i.tenant_id', 'i.user_id', 'i.role', 'i.expires_at', 'i.accepted_at', 'u.email', 'u.password_hash'])
    .where('i.token_hash', '=', tokenHash(request.token))
    .executeTakeFirst();
  if (!invitation) throw notFound('invitation');
  if (invitation.accepted_at !== null) throw conflict('this invitation has already been used');
  if (invitation.expires_at <= Date.now()) throw new AppError('bad_request', 'this invitation has expired; ask for a new one');

  // An existing account may prove itself with a session of its own (never an API key).
  const provenBySession = invitation.password_hash !== null && actor?.kind === 'session' && actor.userId === invitation.user_id;
  let newPasswordHash: string | undefined;
  if (!provenBySession) {
    // The same answer whether or not the account exists: the token's holder learns nothing from it.
    if (!request.password) {
      throw badRequest('password is required: a new account chooses it here, an existing one gives its own (or accepts while logged in as itself)', 'password');
    }
    if (invitation.password_hash === null) {
      newPasswordHash = await hashPassword(request.password);
    } else if (!(await checkPassword(core, invitation.email, { id: invitation.user_id, password_hash: invitation.password_hash }, request.password, clientIp))) {
      throw unauthorized('wrong password for the invited account: give its password, or accept while logged in as it');
    }
  }

  await core.db.transaction().execute(async (trx) => {
    const now = Date.now();
    const used = await trx.updateTable('invitations').set({ accepted_at: now }).where('id', '=', invitation.id).where('accepted_at', 'is', null).executeTakeFirst();
    if (Number(used.numUpdatedRows) !== 1) throw conflict('this invitation has already been used');
    const activated = await trx
      .updateTable('memberships')
      .set({ status: 'active', role: invitation.role, updated_at: now })
      .where('tenant_id', '=', invitation.tenant_id)
      .where('user_id', '=', invitation.user_id)
      .where('status', '=', 'invited')
      .executeTakeFirst();
    if (Number(activated.numUpdatedRows) !== 1) throw conflict('this invitation is no longer valid');
    if (newPasswordHash || request.display_name) {
      await trx
        .updateTable('users')
        .set({
          ...(newPasswordHash ? { password_hash: newPasswordHash } : {}),
          ...(request.display_name ? { display_name: request.display_name.trim() } : {}),
          updated_at: now,
        })
        .where('id', '=', invitation.user_id)
        .execute();
    }
  });
  await core.db.updateTable('users').set({ last_login_at: Date.now() }).where('id', '=', invitation.user_id).execute();
  return startSession(core, invitation.user_id, invitation.tenant_id, invitation.role as UserRole);
}
