import type { Selectable } from 'kysely';
import type { Db } from '../db/index.ts';
import type { TenantsTable, UsersTable } from '../db/schema.ts';
import { type Tenant, type TenantMembership, type UserProfile, type UserTenantStatus } from './models.ts';
import { iso, isoOrNull } from '../lib/time.ts';
import type { UserRole } from './roles.ts';

/** Row → model mappers and the membership query that several account operations share. */

export function toUserProfile(
  u: Pick<Selectable<UsersTable>, 'id' | 'email' | 'display_name' | 'created_at' | 'last_login_at'>,
): UserProfile {
  return {
    id: u.id,
    email: u.email,
    display_name: u.display_name,
    created_at: iso(u.created_at),
    last_login_at: isoOrNull(u.last_login_at),
  };
}

/** The display name an account gets when nobody chose one: the email's local part. */
export function defaultDisplayName(email: string): string {
  return email.split('@')[0] || email;
}

/**
 * A member's profile as their tenant shows it. Until an invitee accepts, the tenant sees only what
 * it gave and what the invitation made, never whether (or since when, or as whom) an account exists.
 */
export function profileInTenant(profile: UserProfile, membership: TenantMembership): UserProfile {
  if (membership.status !== 'invited') return profile;
  return {
    id: profile.id,
    email: profile.email,
    display_name: defaultDisplayName(profile.email),
    created_at: membership.created_at,
    last_login_at: null,
  };
}

export function toTenant(t: Pick<Selectable<TenantsTable>, 'id' | 'name' | 'project_key' | 'created_at'>): Tenant {
  return { id: t.id, name: t.name, project_key: t.project_key, created_at: iso(t.created_at) };
}

/** Memberships with their tenants; narrow with `.where(...)`. */
export function membershipsWithTenant(db: Db) {
  return db
    .selectFrom('memberships as m')
    .innerJoin('tenants as t', 't.id', 'm.tenant_id')
    .select([
      'm.tenant_id',
      'm.user_id',
      'm.role',
      'm.status',
      'm.created_at',
      'm.updated_at',
      't.name as tenant_name',
      't.project_key as tenant_project_key',
      't.created_at as tenant_created_at',
    ])
    .orderBy('m.created_at')
    .orderBy('m.tenant_id');
}

/** Memberships with their tenants and users: the members of a tenant, or one user's session view. */
export function membersWithUsers(db: Db) {
  return membershipsWithTenant(db)
    .innerJoin('users as u', 'u.id', 'm.user_id')
    .select((eb) => [
      eb.fn.coalesce('u.invited_email', 'u.email').as('email'),
      'u.display_name',
      'u.created_at as user_created_at',
      'u.last_login_at',
    ]);
}

type MemberRow = Awaited<ReturnType<ReturnType<typeof membersWithUsers>['executeTakeFirstOrThrow']>>;

export function memberUserProfile(r: MemberRow): UserProfile {
  return toUserProfile({
    id: r.user_id,
    email: r.email,
    display_name: r.display_name,
    created_at: r.user_created_at,
    last_login_at: r.last_login_at,
  });
}

type MembershipRow = Awaited<ReturnType<ReturnType<typeof membershipsWithTenant>['executeTakeFirstOrThrow']>>;

export function toMembership(r: MembershipRow): TenantMembership {
  return {
    tenant_id: r.tenant_id,
    user_id: r.user_id,
    role: r.role as UserRole,
    status: r.status as UserTenantStatus,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
    tenant: { id: r.tenant_id, name: r.tenant_name, project_key: r.tenant_project_key, created_at: iso(r.tenant_created_at) },
  };
}

export async function getMembership(db: Db, tenantId: number, userId: number): Promise<TenantMembership | undefined> {
  const row = await membershipsWithTenant(db).where('m.tenant_id', '=', tenantId).where('m.user_id', '=', userId).executeTakeFirst();
  return row && toMembership(row);
}

export async function getUserProfile(db: Db, userId: number): Promise<UserProfile | undefined> {
  const row = await db
    .selectFrom('users')
    .select((eb) => ['id', eb.fn.coalesce('invited_email', 'email').as('email'), 'display_name', 'created_at', 'last_login_at'])
    .where('id', '=', userId)
    .executeTakeFirst();
  return row && toUserProfile(row);
}

/** Emails compare case-insensitively: stored and looked up lower-cased and trimmed. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
