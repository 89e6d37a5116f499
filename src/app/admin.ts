import { randomBytes } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { Email, Name, Password } from '../accounts/models.ts';
import { issueApiKey } from '../accounts/apiKeys.ts';
import { normalizeEmail } from '../accounts/records.ts';
import { isRole, roleAtLeast, type UserRole } from '../accounts/roles.ts';
import { hashPassword } from '../accounts/secrets.ts';
import { createTenantWithOwner } from '../accounts/tenants.ts';
import { insertUser } from '../accounts/users.ts';
import type { Core } from '../jobs/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { recountUsage, setTenantQuota, tenantQuota } from '../storage/quota.ts';
import { AppError, badRequest, conflict, notFound } from '../lib/errors.ts';
import { schemaProblem } from '../lib/validation.ts';

/** Operator commands (`yunji admin …`): they act with full rights, without an HTTP actor. */

/** Options obey the same schemas as the API's fields. */
function option(name: string, schema: TSchema, value: string): void {
  const problem = schemaProblem(schema, value);
  if (problem) throw badRequest(`--${name} ${problem} (got '${value.length > 80 ? `${value.slice(0, 80)}…` : value}')`);
}

function role(value: string | undefined, fallback: UserRole): UserRole {
  if (value === undefined) return fallback;
  if (!isRole(value)) throw badRequest(`--role must be owner, admin, member or viewer (got '${value}')`);
  return value;
}

async function userIdByEmail(core: Core, email: string): Promise<number> {
  const user = await core.db.selectFrom('users').select('id').where('email', '=', normalizeEmail(email)).executeTakeFirst();
  if (!user) throw notFound(`user ${email}`);
  return user.id;
}

async function tenantExists(core: Core, tenantId: number): Promise<void> {
  const t = await core.db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst();
  if (!t) throw notFound(`tenant ${tenantId}`);
}

export async function adminCreateUser(
  core: Core,
  opts: { email: string; password?: string; displayName?: string; tenantId?: number; role?: string },
): Promise<Record<string, unknown>> {
  option('email', Email, opts.email);
  if (opts.password !== undefined) option('password', Password, opts.password);
  if (opts.displayName !== undefined) option('display-name', Name, opts.displayName);
  const memberRole = role(opts.role, 'member');
  if (opts.tenantId !== undefined) await tenantExists(core, opts.tenantId);
  const password = opts.password ?? randomBytes(12).toString('base64url');
  const passwordHash = await hashPassword(password);
  try {
    const user = await core.db.transaction().execute(async (trx) => {
      const u = await insertUser(trx, opts.email, passwordHash, opts.displayName);
      if (opts.tenantId !== undefined) {
        const now = Date.now();
        await trx
          .insertInto('memberships')
          .values({
            tenant_id: opts.tenantId,
            user_id: u.id,
            role: memberRole,
            status: 'active',
            invited_by: null,
            created_at: now,
            updated_at: now,
          })
          .execute();
      }
      return u;
    });
    return {
      user_id: user.id,
      email: user.email,
      ...(opts.password === undefined ? { password } : {}),
      ...(opts.tenantId !== undefined ? { tenant_id: opts.tenantId, role: memberRole } : {}),
    };
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`a user with email ${normalizeEmail(opts.email)} already exists`);
    throw err;
  }
}

export async function adminCreateTenant(core: Core, opts: { name: string; ownerEmail: string }): Promise<Record<string, unknown>> {
  option('name', Name, opts.name);
  const ownerId = await userIdByEmail(core, opts.ownerEmail);
  return { ...(await createTenantWithOwner(core.db, opts.name, ownerId)), owner_id: ownerId };
}

export async function adminCreateApiKey(
  core: Core,
  opts: { tenantId: number; email: string; name: string; role?: string },
): Promise<Record<string, unknown>> {
  option('name', Name, opts.name);
  await tenantExists(core, opts.tenantId);
  const userId = await userIdByEmail(core, opts.email);
  const membership = await core.db
    .selectFrom('memberships')
    .select(['role', 'status'])
    .where('tenant_id', '=', opts.tenantId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  if (!membership || membership.status !== 'active')
    throw new AppError('forbidden', `${opts.email} is not an active member of tenant ${opts.tenantId}`);
  const keyRole = role(opts.role, membership.role as UserRole);
  if (!roleAtLeast(membership.role as UserRole, keyRole)) {
    throw new AppError('forbidden', `a key cannot have role '${keyRole}', above its user's role '${membership.role}'`);
  }
  return issueApiKey(core.db, opts.tenantId, userId, opts.name, keyRole) as unknown as Record<string, unknown>;
}

/** Every column holding a sealed value (src/lib/sealing.ts), by table. */
const SEALED_COLUMNS = [
  { table: 'user_spaces', column: 'credential_sealed' },
  { table: 'sync_sources', column: 'secret_sealed' },
  { table: 'tenants', column: 'webhook_secret_sealed' },
] as const;

/**
 * Re-seals every stored credential with the current YUNJI_SECRET_KEY, so that former keys can be
 * dropped from YUNJI_SECRET_KEY_PREVIOUS. Safe to run again, and while servers run: a value changed
 * meanwhile is left as its writer sealed it (with the current key).
 */
export async function adminResealSecrets(core: Core): Promise<Record<string, { resealed: number; current: number }>> {
  const counts: Record<string, { resealed: number; current: number }> = {};
  for (const { table, column } of SEALED_COLUMNS) {
    const count = (counts[table] = { resealed: 0, current: 0 });
    const rows = await core.db.selectFrom(table).select(['id', column]).where(column, 'is not', null).orderBy('id').execute();
    for (const row of rows as { id: number; [c: string]: unknown }[]) {
      const sealed = row[column] as string;
      if (core.sealer.isCurrent(sealed)) {
        count.current++;
        continue;
      }
      let plain: string;
      try {
        plain = core.sealer.open(sealed);
      } catch (err) {
        throw new AppError('unavailable', `${table} ${row.id} (${column}): ${(err as Error).message}`);
      }
      await core.db
        .updateTable(table)
        .set({ [column]: core.sealer.seal(plain) })
        .where('id', '=', row.id)
        .where(column, '=', sealed)
        .execute();
      count.resealed++;
    }
  }
  return counts;
}

/** A tenant's storage usage, the limits in force and its own settings (null: the operator's default). */
export async function adminShowTenant(core: Core, tenantId: number): Promise<Record<string, unknown>> {
  return { ...(await tenantQuota(core, tenantId)) };
}

/** Sets a tenant's own quota (a number, 0 meaning none; null: back to the operator's default), then shows it. */
export async function adminSetQuota(
  core: Core,
  tenantId: number,
  limits: { maxBytes?: number | null; maxObjects?: number | null },
): Promise<Record<string, unknown>> {
  return { ...(await setTenantQuota(core, tenantId, limits)) };
}

/**
 * Recounts tenants' usage (one tenant's, or every tenant's) from their objects and their local
 * spaces' files, as start-up does; safe while servers run. Shows each count before and after.
 */
export async function adminRecountUsage(core: Core, tenantId?: number): Promise<Record<string, unknown>> {
  return { tenants: await recountUsage(core, tenantId) };
}
