import type { Kysely } from 'kysely';

/**
 * `tenant_usage.local_bytes`: the bytes of the files Yunji writes into a tenant's local spaces
 * (exports, syncs), outside their `.yunji` folders. They are on the server's own disk, so they
 * count against the byte quota beside the objects' (src/storage/quota.ts). They start at 0:
 * `yunji serve` measures every tenant's local spaces at start-up.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('tenant_usage')
    .addColumn('local_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tenant_usage').dropColumn('local_bytes').execute();
}
