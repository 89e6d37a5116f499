import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../src/db/migrations/index.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

/** 0020 adds the count of tenants' local files at 0 beside the counts they have, and takes it away on the way down, keeping them. */
describe.each(kinds)('the local file bytes migration on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let migrator: Migrator;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
    migrator = new Migrator({ db: rt.core.db, provider: { getMigrations: async () => migrations } });
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('starts local_bytes at 0 and keeps the other counts both ways', async () => {
    const db = rt.core.db;
    const down = await migrator.migrateTo('0019_jobs_waiting_index');
    expect(down.error).toBeUndefined();
    expect(down.results?.map((r) => r.migrationName)).toEqual(['0020_local_file_bytes']);
    const now = Date.now();
    const { rows } = await sql<{
      id: number;
    }>`insert into tenants (name, project_key, created_at, updated_at) values ('mig', 'pk-local-mig', ${now}, ${now}) returning id`.execute(
      db,
    );
    const tenant = Number(rows[0]!.id);
    await sql`insert into tenant_usage (tenant_id, used_bytes, used_objects, max_bytes) values (${tenant}, 1234, 5, 9999)`.execute(db);

    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const up = await sql<
      Record<string, unknown>
    >`select used_bytes, used_objects, local_bytes, max_bytes from tenant_usage where tenant_id = ${tenant}`.execute(db);
    expect(Object.fromEntries(Object.entries(up.rows[0]!).map(([k, v]) => [k, Number(v)]))).toEqual({
      used_bytes: 1234,
      used_objects: 5,
      local_bytes: 0,
      max_bytes: 9999,
    });

    await sql`update tenant_usage set local_bytes = 77 where tenant_id = ${tenant}`.execute(db);
    expect((await migrator.migrateTo('0019_jobs_waiting_index')).error).toBeUndefined();
    const back = await sql<Record<string, unknown>>`select * from tenant_usage where tenant_id = ${tenant}`.execute(db);
    expect(back.rows[0]).not.toHaveProperty('local_bytes');
    expect(Number(back.rows[0]!.used_bytes)).toBe(1234);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
  });
});
