import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapIfEmpty } from '../../src/app/runtime.ts';
import { StorageObject } from '../../src/storage/models.ts';
import { objectJson, objectJsonOfPackage, objectsOfPackage, toStorageObject } from '../../src/storage/objects.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

/**
 * Listings take each object's JSON from the database (`objectJson`); everything else returns
 * `toStorageObject` through the serializer. The two must write the same object for every row.
 */
describe.each(kinds)('objectJson on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let packageId: number;
  let spaceId: number;
  beforeAll(async () => {
    rt = await openTestRuntime(kind, { YUNJI_ADMIN_PASSWORD: 'object-json-test-password' });
    await bootstrapIfEmpty(rt.core);
    const db = rt.core.db;
    const tenant = await db.selectFrom('tenants').select('id').executeTakeFirstOrThrow();
    spaceId = (await db.selectFrom('user_spaces').select('id').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).id;
    const bucket = await db
      .insertInto('buckets')
      .values({ tenant_id: tenant.id, name: 'b', created_at: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    packageId = (
      await db.insertInto('packages').values({ bucket_id: bucket.id, name: 'p', created_at: 0 }).returning('id').executeTakeFirstOrThrow()
    ).id;
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('writes exactly the object toStorageObject gives, for paths that need escaping and times at the edges', async () => {
    const paths = [
      'plain.txt',
      'quote"d/na"me',
      'é/中文/文件.txt',
      '😀 emoji/🎉.bin',
      'tab\u007fdel',
      'dir/\u00a0nbsp',
      "it's",
      'a/b/c/d/e/f/g/h/i/j.k',
      'x'.repeat(1000),
    ];
    const times = [0, 1, 999, 1000, 86_399_999, 951_782_400_000, 1_764_590_400_123, 4_107_542_400_000, 253_402_300_799_999];
    const hash = 'AB'.repeat(32);
    for (const [i, path] of paths.entries()) {
      await rt.core.db
        .insertInto('objects')
        .values({
          package_id: packageId,
          path,
          size: i === 0 ? 0 : 2 ** 40 + i,
          hash,
          space_id: spaceId,
          redundancy: i % 2 ? 'multipartUpload' : 'none',
          created_at: times[i]!,
          updated_at: times[times.length - 1 - i]!,
        })
        .execute();
    }
    const rows = await objectsOfPackage(rt.core.db, packageId).orderBy('o.path').execute();
    const rendered = await objectJsonOfPackage(rt.core.db, packageId).orderBy('o.path').execute();
    expect(rendered.map((r) => r.path)).toEqual(rows.map((r) => r.path));
    for (const [i, row] of rows.entries()) {
      const parsed = JSON.parse(objectJson(rendered[i]!.head, rendered[i]!.created_at, rendered[i]!.updated_at)) as unknown;
      expect(parsed).toEqual(toStorageObject(row));
      // Same fields in the same order as the serializer writes them.
      expect(Object.keys(parsed as object)).toEqual(Object.keys(StorageObject.properties));
    }
  });
});
