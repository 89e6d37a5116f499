import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';
import { timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  // A tenant's workspace: a local side and a cloud side (folders of user spaces) kept equal both ways.
  await db.schema
    .createTable('workspaces')
    .addColumn('tenant_id', 'bigint', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('local_space_id', 'bigint', (c) => c.notNull())
    .addColumn('local_path', 'text', (c) => c.notNull())
    .addColumn('cloud_space_id', 'bigint', (c) => c.notNull())
    .addColumn('cloud_path', 'text', (c) => c.notNull())
    .addColumn('cloud_name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('last_synced_at', ...timeColumn(true))
    .addColumn('stat', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('last_error', 'text')
    .addColumn('updated_at', ...timeColumn())
    .execute();
  // What both sides held after the last sync: tells a deletion on one side from a creation on the other.
  await db.schema
    .createTable('workspace_files')
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('path', dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('local_mtime', 'bigint', (c) => c.notNull())
    .addColumn('cloud_mtime', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('workspace_files_pk', ['tenant_id', 'path'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('workspace_files').execute();
  await db.schema.dropTable('workspaces').execute();
}
