import { sql, type Kysely } from 'kysely';
import { timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Each process's fence against the sweeper: nothing written since `floor` (epoch ms) may be
  // swept while the fence is live (until `expires_at`). See src/spaces/writeFence.ts.
  await db.schema
    .createTable('sweep_fences')
    .addColumn('owner', 'text', (c) => c.primaryKey())
    .addColumn('floor', ...timeColumn())
    .addColumn('expires_at', ...timeColumn())
    .execute();
  // Snapshots of earlier versions may hold pairs taken as alike for their sizes and times alone
  // (docs/DECISIONS.md, Sync): the next run of each workspace merges instead, deleting nothing.
  await sql`delete from workspace_files`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sweep_fences').execute();
}
