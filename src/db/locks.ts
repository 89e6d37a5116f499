import { sql, type Kysely, type Transaction } from 'kysely';
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

/** The advisory lock (PostgreSQL) that serializes claims of tenants' local directories. */
const LOCAL_ROOTS_LOCK = 0x594c5254;

/**
 * Serializes the transactions that check a tenant's local directory against the others' and store
 * it. SQLite runs one writing transaction at a time (another process that wrote meanwhile makes
 * this one fail, never interleave), so only PostgreSQL needs the lock, held until commit.
 */
export async function lockLocalRoots(trx: Kysely<Database>, dialect: DialectName): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(${LOCAL_ROOTS_LOCK})`.execute(trx);
}

/** The class of advisory locks (PostgreSQL) that serialize, per tenant, creations of interval triggers. */
const TRIGGERS_LOCK = 0x59545247;

/**
 * Serializes the transactions that count a tenant's enabled triggers and add one, so that parallel
 * creations cannot pass the cap together. As for local roots, only PostgreSQL needs the lock (one
 * per tenant, held until commit); SQLite runs one writing transaction at a time.
 */
export async function lockTenantTriggers(trx: Kysely<Database>, dialect: DialectName, tenantId: number): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(${TRIGGERS_LOCK}::int4, ${tenantId}::int4)`.execute(trx);
}
