import type { Kysely } from 'kysely';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_sources')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    // The settings without their secrets, which are sealed apart.
    .addColumn('config_json', 'text', (c) => c.notNull())
    .addColumn('secret_sealed', 'text')
    .addColumn('package_id', 'bigint', (c) => c.notNull().references('packages.id').onDelete('cascade'))
    .addColumn('mirror', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .execute();
  await db.schema.createIndex('sync_sources_name').on('sync_sources').columns(['tenant_id', 'name']).unique().execute();
  // What an object was synced from: the source file's time and version token, so an unchanged one is not fetched again.
  await db.schema
    .alterTable('objects')
    .addColumn('source_mtime', ...timeColumn(true))
    .execute();
  await db.schema.alterTable('objects').addColumn('source_tag', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('objects').dropColumn('source_tag').execute();
  await db.schema.alterTable('objects').dropColumn('source_mtime').execute();
  await db.schema.dropTable('sync_sources').execute();
}
