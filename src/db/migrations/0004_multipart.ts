import type { Kysely } from 'kysely';
import { timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('object_parts')
    .addColumn('object_id', 'bigint', (c) => c.notNull().references('objects.id').onDelete('cascade'))
    .addColumn('part_index', 'integer', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('space_id', 'bigint', (c) => c.notNull().references('user_spaces.id'))
    .addColumn('created_at', ...timeColumn())
    .addPrimaryKeyConstraint('object_parts_pk', ['object_id', 'part_index'])
    .execute();
  await db.schema.createIndex('object_parts_space_hash').on('object_parts').columns(['space_id', 'hash']).execute();
}
