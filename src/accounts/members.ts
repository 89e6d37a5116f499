import type { Transaction } from 'kysely';
import type { DbCore } from '../db/core.ts';
import type { Database } from '../db/schema.ts';
import { lockTenant } from '../db/locks.ts';
import { conflict, forbidden, notFound } from '../lib/errors.ts';
import { pageMeta, pageWindow, type Page, type PageQuery } from '../lib/paging.ts';
import { requireRole, type Actor } from './actor.ts';
import type { TenantMember, UpdateMemberRequest } from './models.ts';
import { getMembership, getUserProfile, memberUserProfile, membersWithUsers, profileInTenant, toMembership } from './records.ts';
import { roleAtLeast, type UserRole } from './roles.ts';

export async function listMembers(core: DbCore, actor: Actor, query: PageQuery): Promise<Page<TenantMember>> {
  requireRole(actor, 'viewer');
  const { page, pageSize, offset } = pageWindow(query);
  const rows = await membersWithUsers(core.db).where('m.tenant_id', '=', actor.tenantId).limit(pageSize).offset(offset).execute();
  const { total } = await core.db
    .selectFrom('memberships')
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .where('tenant_id', '=', actor.tenantId)
    .executeTakeFirstOrThrow();
  const items = rows.map((r) => {
    const membership = toMembership(r);
    return { user: profileInTenant(memberUserProfile(r), membership), membership };
  });
  return { items, meta: pageMeta(page, pageSize, Number(total)) };
}

async function targetMembership(trx: Transaction<Database>, actor: Actor, userId: number) {
  const target = await trx
    .selectFrom('memberships as m')
    .innerJoin('users as u', 'u.id', 'm.user_id')
    .select(['m.id', 'm.role', 'm.status', 'u.invited_email'])
    .where('m.tenant_id', '=', actor.tenantId)
    .where('m.user_id', '=', userId)
    .executeTakeFirst();
  if (!target) throw notFound('user');
  if (!roleAtLeast(actor.role, target.role as UserRole)) {
    throw forbidden(`you cannot change a member whose role ('${target.role}') is above yours ('${actor.role}')`);
  }
  // An invitee (pending, or disabled before accepting) is no account yet: only accepting makes it one.
  return { id: target.id, role: target.role as UserRole, status: target.status, invitee: target.invited_email !== null };
}

async function assertNotLastOwner(trx: Transaction<Database>, tenantId: number, what: string): Promise<void> {
  const { owners } = await trx
    .selectFrom('memberships')
    .select((eb) => eb.fn.countAll<number>().as('owners'))
    .where('tenant_id', '=', tenantId)
    .where('role', '=', 'owner')
    .where('status', '=', 'active')
    .executeTakeFirstOrThrow();
  if (Number(owners) <= 1) throw conflict(`cannot ${what} the last owner of the tenant; make someone else owner first`);
}

export async function updateMember(core: DbCore, actor: Actor, userId: number, change: UpdateMemberRequest): Promise<TenantMember> {
  requireRole(actor, 'admin');
  if (change.role && !roleAtLeast(actor.role, change.role)) {
    throw forbidden(`you cannot grant role '${change.role}', which is above yours ('${actor.role}')`);
  }
  await core.db.transaction().execute(async (trx) => {
    await lockTenant(trx, core.dialect, actor.tenantId);
    const target = await targetMembership(trx, actor, userId);
    if (change.status === 'active' && (target.status === 'invited' || target.invitee)) {
      throw conflict('the user has not accepted the invitation yet');
    }
    const losesOwner =
      target.role === 'owner' && target.status === 'active' && ((change.role && change.role !== 'owner') || change.status === 'disabled');
    if (losesOwner) await assertNotLastOwner(trx, actor.tenantId, change.status === 'disabled' ? 'disable' : 'demote');
    await trx
      .updateTable('memberships')
      .set({ ...(change.role ? { role: change.role } : {}), ...(change.status ? { status: change.status } : {}), updated_at: Date.now() })
      .where('id', '=', target.id)
      .execute();
  });
  const [user, membership] = await Promise.all([getUserProfile(core.db, userId), getMembership(core.db, actor.tenantId, userId)]);
  if (!user || !membership) throw notFound('user');
  return { user: profileInTenant(user, membership), membership };
}

/**
 * Removes a user from the current tenant, with their sessions there, their keys and their pending
 * invitations; an invitee's row (which stood for them in this tenant only) goes too.
 */
export async function removeMember(core: DbCore, actor: Actor, userId: number): Promise<void> {
  requireRole(actor, 'admin');
  await core.db.transaction().execute(async (trx) => {
    await lockTenant(trx, core.dialect, actor.tenantId);
    const target = await targetMembership(trx, actor, userId);
    if (target.role === 'owner' && target.status === 'active') await assertNotLastOwner(trx, actor.tenantId, 'remove');
    await trx.deleteFrom('memberships').where('id', '=', target.id).execute();
    await trx.deleteFrom('sessions').where('user_id', '=', userId).where('current_tenant_id', '=', actor.tenantId).execute();
    await trx.deleteFrom('api_keys').where('user_id', '=', userId).where('tenant_id', '=', actor.tenantId).execute();
    await trx.deleteFrom('invitations').where('user_id', '=', userId).where('tenant_id', '=', actor.tenantId).execute();
    if (target.invitee) await trx.deleteFrom('users').where('id', '=', userId).where('invited_email', 'is not', null).execute();
  });
}
