import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.ts';
import { LocalBackend } from '../../src/backends/localBackend.ts';
import type { SpaceHandle } from '../../src/spaces/spaces.ts';
import { filesBackendOf } from '../../src/storage/localFiles.ts';
import { LOCAL_CLAIM_CHUNK, LocalBytesBudget, tenantQuota } from '../../src/storage/quota.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();
const KiB = 1024;

/** A stream of `n` bytes in 16 KiB chunks, as a network source gives them. */
const streamOf = (n: number) =>
  Readable.from(
    (function* () {
      for (let left = n; left > 0; left -= 16 * KiB) yield Buffer.alloc(Math.min(left, 16 * KiB), 7);
    })(),
  );

/**
 * The backend exports and syncs write a tenant's files into a local space through: each file's
 * bytes are taken from the operation's budget of the tenant's byte quota before they are written,
 * less the file replaced, whatever the source said of its size, and once the budget is released
 * the count is what is on disk.
 */
describe.each(kinds)('files written into a local space are counted (%s)', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let space: SpaceHandle;
  let budget: LocalBytesBudget;
  let files: Backend;
  const counted = async (tenantId: number) => (await tenantQuota(rt.core, tenantId)).local_bytes;
  /** The count once the budget is released (the budget can be used again after). */
  const localBytes = async () => {
    await budget.release();
    return counted(space.tenantId);
  };
  /** A new tenant whose own byte limit is `maxBytes` (0: none), and a local space of it. */
  const tenantWith = async (name: string, maxBytes: number): Promise<SpaceHandle> => {
    const now = Date.now();
    const { rows } = await sql<{
      id: number;
    }>`insert into tenants (name, project_key, created_at, updated_at) values (${name}, ${`pk-${name}`}, ${now}, ${now}) returning id`.execute(
      rt.core.db,
    );
    const tenantId = Number(rows[0]!.id);
    await sql`insert into tenant_usage (tenant_id, max_bytes) values (${tenantId}, ${maxBytes})`.execute(rt.core.db);
    const root = join(rt.core.config.dataDir, name);
    return { ...space, tenantId, name, storage: { type: 'local', root }, backend: new LocalBackend(root) };
  };

  beforeAll(async () => {
    rt = await openTestRuntime(kind, { YUNJI_TENANT_MAX_BYTES: String(100 * KiB) });
    const now = Date.now();
    const { rows } = await sql<{
      id: number;
    }>`insert into tenants (name, project_key, created_at, updated_at) values ('files', 'pk-files', ${now}, ${now}) returning id`.execute(
      rt.core.db,
    );
    // A space as the store opens it (not looked up: the handles cache is per process, and each database here numbers its spaces from 1).
    const root = join(rt.core.config.dataDir, 'space');
    space = {
      id: 1,
      tenantId: Number(rows[0]!.id),
      name: 'local',
      revision: 1,
      storage: { type: 'local', root },
      workingDir: '',
      backend: new LocalBackend(root),
      store: null,
    };
    budget = new LocalBytesBudget(rt.core, space.tenantId);
    files = filesBackendOf(space, budget);
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
    expect(filesBackendOf({ ...space, backend: s3 }, budget)).toBe(s3);
  });

  it('claims one chunk for many concurrent writes, and release returns what is left, exactly', async () => {
    const big = await tenantWith('big', 0);
    const own = new LocalBytesBudget(rt.core, big.tenantId);
    const bigFiles = filesBackendOf(big, own);
    await Promise.all(Array.from({ length: 20 }, (_, i) => bigFiles.put(`f${i}`, streamOf(3 * KiB), { size: 3 * KiB })));
    // Twenty files written at once, one claim between them.
    expect(await counted(big.tenantId)).toBe(LOCAL_CLAIM_CHUNK);
    await bigFiles.remove('f0');
    await own.release();
    expect(await counted(big.tenantId)).toBe(19 * 3 * KiB);
  });

  it("lets a second operation use the room another's chunk leaves, refuses it past the limit, and never counts past it", async () => {
    // Room for one chunk and 20 KiB: the first operation's chunk passes, the second's is refused, and it claims file by file.
    const tight = await tenantWith('tight', LOCAL_CLAIM_CHUNK + 20 * KiB);
    const [first, second] = [new LocalBytesBudget(rt.core, tight.tenantId), new LocalBytesBudget(rt.core, tight.tenantId)];
    const [one, two] = [
      filesBackendOf(tight, first),
      filesBackendOf({ ...tight, backend: new LocalBackend(join(rt.core.config.dataDir, 'tight', 'two')) }, second),
    ];
    await one.put('a', Buffer.alloc(8 * KiB));
    const results = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => two.put(`b${i}`, streamOf(8 * KiB), { size: 8 * KiB })));
    // 20 KiB of room for four files of 8: two land, the others are the 507.
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ kind: 'insufficient_storage' });
    expect(await counted(tight.tenantId)).toBeLessThanOrEqual(LOCAL_CLAIM_CHUNK + 20 * KiB);
    await Promise.all([first.release(), second.release()]);
    expect(await counted(tight.tenantId)).toBe(8 * KiB + 16 * KiB);
  });
});
