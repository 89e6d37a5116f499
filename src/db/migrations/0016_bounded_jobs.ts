import type { Kysely } from 'kysely';

/**
 * Indexes for bounding what tenants make the job engine hold: the purge of finished jobs and of
 * finished webhook deliveries past the retention (a range scan, nothing read when nothing is due),
 * a tenant's due jobs in order (the fair-share claim), and a tenant's triggers (their cap).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('jobs_ended').on('jobs').column('ended_at').execute();
  await db.schema.createIndex('job_deliveries_created').on('job_deliveries').column('created_at').execute();
  await db.schema.createIndex('jobs_tenant_due').on('jobs').columns(['tenant_id', 'status', 'start_at', 'id']).execute();
  await db.schema.createIndex('job_triggers_tenant').on('job_triggers').columns(['tenant_id', 'enabled']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('job_triggers_tenant').execute();
  await db.schema.dropIndex('jobs_tenant_due').execute();
  await db.schema.dropIndex('job_deliveries_created').execute();
  await db.schema.dropIndex('jobs_ended').execute();
}
