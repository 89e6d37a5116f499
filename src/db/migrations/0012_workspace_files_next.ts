import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  // A workspace snapshot being written: filled in batches while both sides are listed, then moved
  // into workspace_files in one transaction that talks only to the database.
  await db.schema
    .createTable('workspace_files_next')
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('path', dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('local_mtime', 'bigint', (c) => c.notNull())
    .addColumn('cloud_mtime', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('workspace_files_next_pk', ['tenant_id', 'path'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('workspace_files_next').execute();
}
