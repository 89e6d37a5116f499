import type { Kysely } from 'kysely';

/**
 * The fair-share claim finds the tenants with scheduled jobs one index probe at a time (status,
 * then tenant), then each one's oldest due job (start time): an index led by status serves both,
 * where 0016's, led by tenant, made the first a scan of every due job.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_tenant_due').execute();
  await db.schema.createIndex('jobs_waiting').on('jobs').columns(['status', 'tenant_id', 'start_at', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_waiting').execute();
  await db.schema.createIndex('jobs_tenant_due').on('jobs').columns(['tenant_id', 'status', 'start_at', 'id']).execute();
}
