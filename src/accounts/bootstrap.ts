import { randomBytes } from 'node:crypto';
import type { DbCore } from '../db/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { hashPassword } from './secrets.ts';
import { insertTenantWithOwner } from './tenants.ts';
import { insertUser } from './users.ts';

export interface BootstrapResult {
  tenantId: number;
  adminEmail: string;
  /** Set only when the password was generated: shown once, then never again. */
  generatedPassword?: string;
}

/**
 * First start on an empty database: tenant `default` and its owner, the configured admin, in one
 * transaction. Processes starting at once race harmlessly: the loser hits the unique email and
 * rolls back.
 */
export async function bootstrap(core: DbCore): Promise<BootstrapResult | undefined> {
  const anyTenant = await core.db.selectFrom('tenants').select('id').limit(1).executeTakeFirst();
  if (anyTenant) return undefined;
  const generatedPassword = core.config.adminPassword === '' ? randomBytes(12).toString('base64url') : undefined;
  const passwordHash = await hashPassword(generatedPassword ?? core.config.adminPassword);
  try {
    return await core.db.transaction().execute(async (trx) => {
      const admin = await insertUser(trx, core.config.adminEmail, passwordHash, 'Administrator');
      const tenant = await insertTenantWithOwner(trx, 'default', admin.id);
      return { tenantId: tenant.id, adminEmail: admin.email, generatedPassword };
    });
  } catch (err) {
    if (isUniqueViolation(err)) return undefined;
    throw err;
  }
}
