import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('user_spaces')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('storage_json', 'text', (c) => c.notNull())
    .addColumn('shard_max_size', 'bigint')
    .addColumn('working_dir', 'text', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .addUniqueConstraint('user_spaces_tenant_name', ['tenant_id', 'name'])
    .execute();

  await db.schema
    .createTable('objects')
    .addColumn('id', ...idColumn(db))
    .addColumn('package_id', 'bigint', (c) => c.notNull().references('packages.id').onDelete('cascade'))
    // Paths sort and compare in byte order on both databases (SQLite's default; PostgreSQL's "C"),
    // so listings page through the (package_id, path) index.
    .addColumn('path', dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('space_id', 'bigint', (c) => c.notNull().references('user_spaces.id'))
    .addColumn('redundancy', 'text', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .addUniqueConstraint('objects_package_path', ['package_id', 'path'])
    .execute();
  // "Is this shard still referenced?" when sweeping a space.
  await db.schema.createIndex('objects_space_hash').on('objects').columns(['space_id', 'hash']).execute();
}
