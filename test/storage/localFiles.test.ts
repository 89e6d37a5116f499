import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/spaces/backend.ts';
import { LocalBackend } from '../../src/spaces/localBackend.ts';
import type { SpaceHandle } from '../../src/spaces/spaces.ts';
import { filesBackendOf } from '../../src/storage/localFiles.ts';
import { tenantQuota } from '../../src/storage/quota.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();
const KiB = 1024;

/** A stream of `n` bytes in 16 KiB chunks, as a network source gives them. */
const streamOf = (n: number) => Readable.from((function* () {
  for (let left = n; left > 0; left -= 16 * KiB) yield Buffer.alloc(Math.min(left, 16 * KiB), 7);
})());

/**
 * The backend exports and syncs write a tenant's files into a local space through: each file's
 * bytes are claimed from the tenant's byte quota before they are written, less the file replaced,
 * whatever the source said of its size, and the count always ends as what is on disk.
 */
describe.each(kinds)('files written into a local space are counted (%s)', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let space: SpaceHandle;
  let files: Backend;
  const localBytes = async () => (await tenantQuota(rt.core, space.tenantId)).local_bytes;

  beforeAll(async () => {
    rt = await openTestRuntime(kind, { YUNJI_TENANT_MAX_BYTES: String(100 * KiB) });
    const now = Date.now();
    const { rows } = await sql<{ id: number }>`insert into tenants (name, project_key, created_at, updated_at) values ('files', 'pk-files', ${now}, ${now}) returning id`.execute(rt.core.db);
    // A space as the store opens it (not looked up: the handles cache is per process, and each database here numbers its spaces from 1).
    const root = join(rt.core.config.dataDir, 'space');
    space = { id: 1, tenantId: Number(rows[0]!.id), name: 'local', revision: 1, storage: { type: 'local', root }, workingDir: '', backend: new LocalBackend(root), store: null };
    files = filesBackendOf(rt.core, space);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('stops a stream that brings more than it said once it passes the quota, keeping nothing and counting nothing', async () => {
    await expect(files.put('liar', streamOf(300 * KiB), { size: 10 })).rejects.toMatchObject({ kind: 'insufficient_storage' });
    expect(await files.stat('liar')).toBeUndefined();
    expect(await localBytes()).toBe(0);
    // Within the quota, the bytes it really had are counted.
    await files.put('liar', streamOf(40 * KiB), { size: 10 });
    expect(await localBytes()).toBe(40 * KiB);
  });

  it('counts a replacement as the difference and gives back what a removal frees', async () => {
    await files.put('r', Buffer.alloc(30 * KiB));
    expect(await localBytes()).toBe(70 * KiB);
    // 50 KiB in place of 30: 20 more, which fits where 50 would not.
    await files.put('r', streamOf(50 * KiB), { size: 50 * KiB });
    expect(await localBytes()).toBe(90 * KiB);
    await files.remove('r');
    await files.remove('r');
    expect(await localBytes()).toBe(40 * KiB);
    await files.remove('liar');
    expect(await localBytes()).toBe(0);
  });

  it('ends with the count of what is on disk when writers and removers of one file race', async () => {
    await Promise.all([
      ...[5, 9, 2, 7].map((k) => files.put('race', streamOf(k * KiB), { size: k * KiB })),
      files.remove('race'),
      files.put('race', Buffer.alloc(3 * KiB)),
      files.remove('race'),
    ]);
    expect(await localBytes()).toBe((await files.stat('race'))?.size ?? 0);
    await files.remove('race');
    expect(await localBytes()).toBe(0);
  });

  it("counts nothing in Yunji's own folder, and hands an S3 space's backend back as it is", async () => {
    await files.put('.yunji/tmp/own', Buffer.alloc(50 * KiB));
    expect(await localBytes()).toBe(0);
    await files.remove('.yunji/tmp/own');
    const s3 = { describe: () => 'an S3 bucket' } as unknown as Backend;
    expect(filesBackendOf(rt.core, { ...space, backend: s3 })).toBe(s3);
  });
});
