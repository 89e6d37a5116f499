import { sql, type Kysely } from 'kysely';

/**
 * Tenant quotas: what each tenant stores (its objects' sizes, each in full, and its unfinished
 * uploads' parts; its object rows) and its own limits (null: the operator's default; 0: none),
 * beside the tenant's row rather than in it: every upload updates this row, and a write to
 * `tenants` empties the credential cache. A tenant made later gets its row on its first write.
 * The counts start at 0: `yunji serve` recounts every tenant at start-up (src/storage/quota.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('tenant_usage')
    .addColumn('tenant_id', 'bigint', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('used_objects', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('max_bytes', 'bigint')
    .addColumn('max_objects', 'bigint')
    .execute();
  await sql`insert into tenant_usage (tenant_id) select id from tenants`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('tenant_usage').execute();
}
