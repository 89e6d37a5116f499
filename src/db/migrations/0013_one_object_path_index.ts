import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';

/**
 * PostgreSQL: the unique (package_id, path) constraint's index carries the listing columns, and
 * the separate covering index of 0006 goes. With two indexes on (package_id, path), the planner
 * chose between them by its statistics, and after some ANALYZEs it read listing pages through the
 * narrow one with a table lookup per row (a page of 1,000 of a 1,000,000-object package: 4.8–6 ms
 * of execution, against 2.9 ms as an index-only scan of the covering one). With one index the
 * only choice is that index, read index-only once vacuum has marked the table's pages visible;
 * and each object write updates one index fewer.
 *
 * SQLite keeps both: its covering index holds every column in its key, so it cannot say that
 * (package_id, path) is unique.
 */
const COLUMNS = sql`id, size, hash, space_id, redundancy, created_at, updated_at`;

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql`alter table objects add constraint objects_package_path_listing unique (package_id, path) include (${COLUMNS})`.execute(db);
  await sql`alter table objects drop constraint objects_package_path`.execute(db);
  await sql`drop index objects_listing`.execute(db);
  await sql`alter table objects rename constraint objects_package_path_listing to objects_package_path`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql`create index objects_listing on objects (package_id, path) include (${COLUMNS})`.execute(db);
  await sql`alter table objects add constraint objects_package_path_narrow unique (package_id, path)`.execute(db);
  await sql`alter table objects drop constraint objects_package_path`.execute(db);
  await sql`alter table objects rename constraint objects_package_path_narrow to objects_package_path`.execute(db);
}
