import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';

/**
 * PostgreSQL: the unique (package_id, path) constraint's index carries the listing columns, and
 * the separate covering index of 0006 goes. With two indexes on (package_id, path) the planner
 * chooses between them by its statistics: on a 1,000,000-object package, a page query of the same
 * shape as the listing's (all the listing columns, path order, limit 1,001) was planned on the
 * narrow one, with a table lookup per row (4.8–6 ms of execution against 0.7 ms index-only on the
 * covering one). The listing's own statement happened to be planned on the covering index there,
 * so pages were no faster after this change (A/B, 1,000 pages each way, twice); what it removes is
 * the chance of that plan, 80 MB of index per million objects, and one index write per object.
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
