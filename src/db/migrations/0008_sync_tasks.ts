import type { Kysely } from 'kysely';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_tasks')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    // The task as the client defined it (trigger, mode, filters, options, source, destinations).
    .addColumn('definition_json', 'text', (c) => c.notNull())
    // The interval trigger that makes its runs (Interval tasks only).
    .addColumn('trigger_id', 'bigint')
    .addColumn('cancelled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'bigint')
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .execute();
  await db.schema.createIndex('sync_tasks_tenant').on('sync_tasks').columns(['tenant_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sync_tasks').execute();
}
