import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation } from '../../src/db/errors.ts';
import { migrations } from '../../src/db/migrations/index.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();
const LISTING_COLUMNS = ['id', 'size', 'hash', 'space_id', 'redundancy', 'created_at', 'updated_at'];

describe.each(kinds)('the objects (package_id, path) index on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let packageId: number;
  let spaceId: number;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
    const db = rt.core.db;
    const now = Date.now();
    const tenant = await db
      .insertInto('tenants')
      .values({ name: 'index-test', project_key: 'pk-index-test', created_at: now, updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    const bucket = await db
      .insertInto('buckets')
      .values({ tenant_id: tenant.id, name: 'b', created_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    packageId = (
      await db.insertInto('packages').values({ bucket_id: bucket.id, name: 'p', created_at: now }).returning('id').executeTakeFirstOrThrow()
    ).id;
    spaceId = (
      await db
        .insertInto('user_spaces')
        .values({
          tenant_id: tenant.id,
          name: 's',
          storage_json: '{"type":"local","root":"unused"}',
          shard_max_size: 0,
          working_dir: '',
          is_default: 0,
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  const addObject = (path: string) =>
    rt.core.db
      .insertInto('objects')
      .values({ package_id: packageId, path, size: 1, hash: 'AB', space_id: spaceId, redundancy: 'none', created_at: 1, updated_at: 1 })
      .execute();

  /** PostgreSQL's indexes on objects whose key starts with (package_id, path): name, unique, key and included columns. */
  const pathIndexes = async () =>
    (
      await sql<{ name: string; unique: boolean; keys: string[]; included: string[] }>`
        select i.relname as name, x.indisunique as unique,
          array(select a.attname from unnest(x.indkey[0:x.indnkeyatts - 1]) with ordinality k(n, o) join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n order by k.o)::text[] as keys,
          array(select a.attname from unnest(x.indkey[x.indnkeyatts:]) with ordinality k(n, o) join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n order by k.o)::text[] as included
        from pg_index x join pg_class i on i.oid = x.indexrelid
        where x.indrelid = 'objects'::regclass`.execute(rt.core.db)
    ).rows.filter((r) => r.keys[0] === 'package_id' && r.keys[1] === 'path');

  it('keeps one path per package', async () => {
    await addObject('a/one');
    const again = await addObject('a/one').catch((err: unknown) => err);
    expect(isUniqueViolation(again)).toBe(true);
  });

  it(
    kind === 'postgres'
      ? 'is one unique index that also carries the listing columns, so the planner has no narrower one to pick'
      : 'has the unique index and the covering listing index beside it',
    async () => {
      if (kind === 'postgres') {
        expect(await pathIndexes()).toEqual([
          { name: 'objects_package_path', unique: true, keys: ['package_id', 'path'], included: LISTING_COLUMNS },
        ]);
        return;
      }
      const indexes = (
        await sql<{ name: string; unique: number; columns: string }>`
        select l.name, l."unique", (select group_concat(i.name, ',') from pragma_index_info(l.name) i) as columns
        from pragma_index_list('objects') l`.execute(rt.core.db)
      ).rows;
      expect(indexes).toContainEqual({ name: expect.any(String), unique: 1, columns: 'package_id,path' });
      expect(indexes).toContainEqual({ name: 'objects_listing', unique: 0, columns: ['package_id', 'path', ...LISTING_COLUMNS].join(',') });
    },
  );

  it('migrates down and up again with objects in place', async () => {
    await addObject('a/two');
    const migrator = new Migrator({ db: rt.core.db, provider: { getMigrations: async () => migrations } });
    // Down to just before this index (later migrations go down first, each in its turn).
    const down = await migrator.migrateTo('0012_workspace_files_next');
    expect(down.error).toBeUndefined();
    expect(down.results?.map((r) => r.migrationName).at(-1)).toBe('0013_one_object_path_index');
    if (kind === 'postgres') {
      expect((await pathIndexes()).map((i) => [i.name, i.unique]).sort()).toEqual([
        ['objects_listing', false],
        ['objects_package_path', true],
      ]);
    }
    const up = await migrator.migrateToLatest();
    expect(up.error).toBeUndefined();
    const paths = await rt.core.db.selectFrom('objects').select('path').where('package_id', '=', packageId).orderBy('path').execute();
    expect(paths.map((p) => p.path)).toEqual(['a/one', 'a/two']);
    if (kind === 'postgres') expect((await pathIndexes()).map((i) => i.name)).toEqual(['objects_package_path']);
    expect(isUniqueViolation(await addObject('a/two').catch((err: unknown) => err))).toBe(true);
  });
});
