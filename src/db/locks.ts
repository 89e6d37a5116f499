import type { Transaction } from 'kysely';
import type { Database } from './schema.ts';
import type { DialectName } from './dialect.ts';

/**
 * Serializes writers of one tenant's membership set inside a transaction. SQLite transactions are
 * already serial (one writer), so only PostgreSQL needs the row lock.
 */
export async function lockTenant(trx: Transaction<Database>, dialect: DialectName, tenantId: number): Promise<void> {
  if (dialect !== 'postgres') return;
  await trx.selectFrom('tenants').select('id').where('id', '=', tenantId).forUpdate().execute();
}
