import { sql, type Kysely } from 'kysely';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('jobs')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('reference_id', 'text')
    .addColumn('params_json', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('concurrency_key', 'text')
    .addColumn('progress_json', 'text')
    .addColumn('stats_json', 'text')
    .addColumn('result_json', 'text')
    .addColumn('errors_json', 'text')
    .addColumn('error_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('notify_hook', 'text')
    .addColumn('state', 'text')
    .addColumn('parent_id', 'bigint', (c) => c.references('jobs.id').onDelete('set null'))
    .addColumn('trigger_id', 'bigint')
    .addColumn('created_by', 'bigint')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', ...timeColumn(true))
    // Each event of the job gets the next number; webhooks deliver in this order.
    .addColumn('sequence', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('start_at', ...timeColumn())
    .addColumn('started_at', ...timeColumn(true))
    .addColumn('ended_at', ...timeColumn(true))
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn(true))
    .execute();
  // The claim: due jobs in order.
  await db.schema.createIndex('jobs_due').on('jobs').columns(['status', 'start_at', 'id']).execute();
  await db.schema.createIndex('jobs_tenant').on('jobs').columns(['tenant_id', 'id']).execute();
  await db.schema.createIndex('jobs_parent').on('jobs').column('parent_id').execute();
  // At most one unfinished job per concurrency key, enforced by the database for every process.
  await db.schema
    .createIndex('jobs_concurrency_key')
    .on('jobs')
    .column('concurrency_key')
    .unique()
    .where(sql.ref('status'), 'in', sql`('scheduled', 'running')`)
    .execute();

  await db.schema
    .createTable('job_logs')
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('line', 'integer', (c) => c.notNull())
    .addColumn('level', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('at', ...timeColumn())
    .addPrimaryKeyConstraint('job_logs_pk', ['job_id', 'line'])
    .execute();

  await db.schema
    .createTable('job_triggers')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('params_json', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('reference_id', 'text')
    .addColumn('concurrency_key', 'text')
    .addColumn('notify_hook', 'text')
    .addColumn('created_by', 'bigint')
    .addColumn('interval_seconds', 'integer', (c) => c.notNull())
    .addColumn('next_run_at', ...timeColumn())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .execute();
  await db.schema.createIndex('job_triggers_due').on('job_triggers').columns(['enabled', 'next_run_at']).execute();

  await db.schema
    .createTable('job_deliveries')
    .addColumn('id', ...idColumn(db))
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull())
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    // pending | delivered | failed (gave up)
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', ...timeColumn())
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('lease_expires_at', ...timeColumn(true))
    .addColumn('created_at', ...timeColumn())
    .addColumn('delivered_at', ...timeColumn(true))
    .addUniqueConstraint('job_deliveries_job_sequence', ['job_id', 'sequence'])
    .execute();
  await db.schema.createIndex('job_deliveries_due').on('job_deliveries').columns(['status', 'next_attempt_at']).execute();

  // Who uploaded each object: deleting a user's data finds them by this.
  await db.schema.alterTable('objects').addColumn('created_by', 'bigint').execute();
  await db.schema.createIndex('objects_created_by').on('objects').column('created_by').execute();
  // A tenant's default webhook and the secret that signs every webhook of the tenant.
  await db.schema.alterTable('tenants').addColumn('webhook_url', 'text').execute();
  await db.schema.alterTable('tenants').addColumn('webhook_secret_sealed', 'text').execute();
}
