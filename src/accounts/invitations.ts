import type { DbCore } from '../db/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { lockTenant } from '../db/locks.ts';
import { AppError, badRequest, conflict, forbidden, notFound, unauthorized } from '../lib/errors.ts';
import { requireRole, type Actor } from './actor.ts';
import { type AcceptInvitationRequest, type AuthSession, type InviteUserRequest, type UserInvitationResult } from './models.ts';
import { iso } from '../lib/time.ts';
import { checkPassword } from './passwords.ts';
import { getMembership, getUserProfile, normalizeEmail, profileInTenant } from './records.ts';
import { roleAtLeast, type UserRole } from './roles.ts';
import { startSession } from './sessions.ts';
import { hashPassword, newToken, TOKEN_PREFIX, tokenHash } from './secrets.ts';
import { insertInvitee, insertUser } from './users.ts';

/**
 * Invites an email into the current tenant. The pending member is a row of its own (an invitee,
 * `insertInvitee`), made whether or not an account has the email, so what the tenant sees of it
 * (its id included) is the same either way; a pending invitation is replaced (new token, new role).
 * No mail is sent: the caller hands the token to the invitee. `created_user` says whether the email
 * is new to this tenant.
 */
export async function inviteUser(core: DbCore, actor: Actor, request: InviteUserRequest): Promise<UserInvitationResult> {
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
      // A member of this tenant already: an account that accepted, or an invitee (pending or disabled).
      const member = await trx
        .selectFrom('memberships as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .select(['m.id', 'm.status', 'm.user_id', 'u.invited_email'])
        .where('m.tenant_id', '=', actor.tenantId)
        .where((eb) => eb.or([eb('u.email', '=', email), eb('u.invited_email', '=', email)]))
        .orderBy('m.id')
        .executeTakeFirst();
      if (member?.status === 'active') throw conflict(`${email} is already an active member of this tenant`);
      if (member?.status === 'disabled') {
        const remedy =
          member.invited_email === null
            ? `re-enable them with PATCH /api/users/${member.user_id}`
            : `they never accepted: remove them (DELETE /api/users/${member.user_id}) and invite again`;
        throw conflict(`${email} is a disabled member of this tenant; ${remedy}`);
      }
      let userId: number;
      if (member) {
        userId = member.user_id;
        await trx
          .updateTable('memberships')
          .set({ role: request.role, invited_by: actor.userId, updated_at: now })
          .where('id', '=', member.id)
          .execute();
        await trx.deleteFrom('invitations').where('tenant_id', '=', actor.tenantId).where('user_id', '=', userId).execute();
      } else {
        userId = (await insertInvitee(trx, email)).id;
        await trx
          .insertInto('memberships')
          .values({
            tenant_id: actor.tenantId,
            user_id: userId,
            role: request.role,
            status: 'invited',
            invited_by: actor.userId,
            created_at: now,
            updated_at: now,
          })
          .execute();
      }
      await trx
        .insertInto('invitations')
        .values({
          tenant_id: actor.tenantId,
          user_id: userId,
          role: request.role,
          token_hash: tokenHash(token),
          invited_by: actor.userId,
          created_at: now,
          expires_at: expiresAt,
          accepted_at: null,
        })
        .execute();
      return { userId, newMember: !member };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`${email} is being invited by another request; try again`);
    throw err;
  }
  const [user, membership] = await Promise.all([
    getUserProfile(core.db, result.userId),
    getMembership(core.db, actor.tenantId, result.userId),
  ]);
  if (!user || !membership) throw notFound('user');
  return {
    user: profileInTenant(user, membership),
    membership,
    invitation_token: token,
    invitation_expires_at: iso(expiresAt),
    created_user: result.newMember,
  };
}

/**
 * Completes an invitation and logs the invitee in to the tenant: the membership moves from the
 * invitee row to the account with the invited email, made here when there is none. A new account
 * must choose a password here; an existing account proves itself with its password (checked and
 * throttled like a login) or with a session of that same user. An API key is not a login: it proves
 * nothing here, so neither an invitation token nor a key is ever turned into a session of somebody's
 * existing account.
 */
export async function acceptInvitation(
  core: DbCore,
  request: AcceptInvitationRequest,
  clientIp: string,
  actor?: Actor,
): Promise<AuthSession> {
  const invitation = await core.db
    .selectFrom('invitations as i')
    .innerJoin('users as u', 'u.id', 'i.user_id')
    .select(['i.id', 'i.tenant_id', 'i.user_id as invitee_id', 'i.role', 'i.expires_at', 'i.accepted_at', 'u.invited_email'])
    .where('i.token_hash', '=', tokenHash(request.token))
    .executeTakeFirst();
  if (!invitation) throw notFound('invitation');
  if (invitation.accepted_at !== null) throw conflict('this invitation has already been used');
  if (invitation.expires_at <= Date.now()) throw new AppError('bad_request', 'this invitation has expired; ask for a new one');
  const email = invitation.invited_email;
  if (email === null) throw conflict('this invitation is no longer valid');
  // The account with the invited email, if any: made by another invitation's acceptance, or older.
  const account = await core.db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();

  // An existing account may prove itself with a session of its own (never an API key).
  const provenBySession = !!account && account.password_hash !== null && actor?.kind === 'session' && actor.userId === account.id;
  let newPasswordHash: string | undefined;
  if (!provenBySession) {
    // The same answer whether or not the account exists: the token's holder learns nothing from it.
    if (!request.password) {
      throw badRequest(
        'password is required: a new account chooses it here, an existing one gives its own (or accepts while logged in as itself)',
        'password',
      );
    }
    if (!account || account.password_hash === null) {
      newPasswordHash = await hashPassword(request.password);
    } else if (!(await checkPassword(core, email, { id: account.id, password_hash: account.password_hash }, request.password, clientIp))) {
      throw unauthorized('wrong password for the invited account: give its password, or accept while logged in as it');
    }
  }

  let userId: number;
  try {
    userId = await core.db.transaction().execute(async (trx) => {
      const now = Date.now();
      const used = await trx
        .updateTable('invitations')
        .set({ accepted_at: now })
        .where('id', '=', invitation.id)
        .where('accepted_at', 'is', null)
        .executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) throw conflict('this invitation has already been used');
      const displayName = request.display_name ? { display_name: request.display_name.trim() } : {};
      let id: number;
      if (!account) {
        // A new account; a unique violation means another acceptance made it meanwhile.
        id = (await insertUser(trx, email, newPasswordHash ?? null, request.display_name)).id;
      } else {
        id = account.id;
        if (newPasswordHash || request.display_name) {
          // A password is set only on an account that still has none (never over one set meanwhile).
          const set = await trx
            .updateTable('users')
            .set({ ...(newPasswordHash ? { password_hash: newPasswordHash } : {}), ...displayName, updated_at: now })
            .where('id', '=', id)
            .$if(!!newPasswordHash, (q) => q.where('password_hash', 'is', null))
            .executeTakeFirst();
          if (Number(set.numUpdatedRows) !== 1) throw conflict('the account changed while accepting; try again');
        }
      }
      const already = await trx
        .selectFrom('memberships')
        .select('id')
        .where('tenant_id', '=', invitation.tenant_id)
        .where('user_id', '=', id)
        .executeTakeFirst();
      if (already) throw conflict('the account is already a member of this tenant');
      // The invitee's membership and invitations become the account's; the invitee row goes.
      const activated = await trx
        .updateTable('memberships')
        .set({ user_id: id, status: 'active', role: invitation.role, updated_at: now })
        .where('tenant_id', '=', invitation.tenant_id)
        .where('user_id', '=', invitation.invitee_id)
        .where('status', '=', 'invited')
        .executeTakeFirst();
      if (Number(activated.numUpdatedRows) !== 1) throw conflict('this invitation is no longer valid');
      await trx.updateTable('invitations').set({ user_id: id }).where('user_id', '=', invitation.invitee_id).execute();
      await trx.deleteFrom('users').where('id', '=', invitation.invitee_id).where('invited_email', 'is not', null).execute();
      return id;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict('the account was made by another request meanwhile; try again');
    throw err;
  }
  await core.db.updateTable('users').set({ last_login_at: Date.now() }).where('id', '=', userId).execute();
  return startSession(core, userId, invitation.tenant_id, invitation.role as UserRole);
}
