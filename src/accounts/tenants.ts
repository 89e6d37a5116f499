import type { Kysely, Transaction } from 'kysely';
import type { DbCore } from '../db/core.ts';
import type { Db } from '../db/index.ts';
import type { Database } from '../db/schema.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { forbidden } from '../lib/errors.ts';
import type { Actor } from './actor.ts';
import type { Tenant, TenantMembership } from './models.ts';
import { membershipsWithTenant, toMembership, toTenant } from './records.ts';
import { randomKey } from './secrets.ts';

/** Inserts a tenant and makes `ownerId` its active owner; run it inside a transaction. */
export async function insertTenantWithOwner(trx: Kysely<Database> | Transaction<Database>, name: string, ownerId: number): Promise<Tenant> {
  const now = Date.now();
  const tenant = await trx
    .insertInto('tenants')
    .values({ name: name.trim(), project_key: randomKey(), created_at: now, updated_at: now })
    .returning(['id', 'name', 'project_key', 'created_at'])
    .executeTakeFirstOrThrow();
  await trx
    .insertInto('memberships')
    .values({ tenant_id: tenant.id, user_id: ownerId, role: 'owner', status: 'active', invited_by: null, created_at: now, updated_at: now })
    .execute();
  return toTenant(tenant);
}

export async function createTenantWithOwner(db: Db, name: string, ownerId: number): Promise<Tenant> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await db.transaction().execute((trx) => insertTenantWithOwner(trx, name, ownerId));
    } catch (err) {
      // A project key collision is astronomically unlikely; a fresh key settles it.
      if (!isUniqueViolation(err) || attempt >= 2) throw err;
    }
  }
}

export async function createTenant(core: DbCore, actor: Actor, name: string): Promise<Tenant> {
  if (actor.kind === 'api_key') throw forbidden('API keys act inside one tenant and cannot create tenants; use a login session');
  return createTenantWithOwner(core.db, name, actor.userId);
}

/** Every tenant the user belongs to, with their role and status there (an API key sees only its own). */
export async function listAccessibleTenants(core: DbCore, actor: Actor): Promise<TenantMembership[]> {
  let query = membershipsWithTenant(core.db).where('m.user_id', '=', actor.userId);
  if (actor.kind === 'api_key') query = query.where('m.tenant_id', '=', actor.tenantId);
  return (await query.execute()).map(toMembership);
}
