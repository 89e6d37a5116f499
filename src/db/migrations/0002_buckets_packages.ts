import type { Kysely } from 'kysely';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('buckets')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addUniqueConstraint('buckets_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('packages')
    .addColumn('id', ...idColumn(db))
    .addColumn('bucket_id', 'bigint', (c) => c.notNull().references('buckets.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addUniqueConstraint('packages_bucket_name', ['bucket_id', 'name'])
    .execute();
}
