import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The file time Yunji gave each object it wrote to an S3 bucket, with the ETag and size it then
  // had: a listing that shows the same ETag and size gives the file's own time without a HEAD.
  await db.schema
    .createTable('s3_object_times')
    .addColumn('location', 'text', (c) => c.notNull())
    // Byte order, as S3 lists keys.
    .addColumn('key', dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.notNull())
    .addColumn('etag', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('mtime_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('s3_object_times_pk', ['location', 'key'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('s3_object_times').execute();
}
