import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, runCli, startServer, type RunningServer } from '../helpers/server.ts';
import { localSpaceMaker, waitForJob, writeTree } from '../helpers/sync.ts';

/**
 * Files Yunji writes into a tenant's local spaces (package exports, space syncs) are on the
 * server's own disk: they count against the tenant's byte quota as objects do. Without that, a
 * tenant exports one package again and again, to new folders, and fills the disk while its quota
 * says nothing was used. Refused writes keep nothing beyond what was counted, deletions Yunji makes
 * give bytes back, and a recount measures the spaces again.
 */
const kinds = await databaseKinds();
type Api = ReturnType<typeof client>;

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes of the files under `dir`, as a space counts them: no `.yunji` folder, no symlink followed. */
function bytesOnDisk(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isSymbolicLink() || e.name === '.yunji') continue;
    const path = join(dir, e.name);
    total += e.isDirectory() ? bytesOnDisk(path) : lstatSync(path).size;
  }
  return total;
}

describe.each(kinds)("files written into a tenant's local spaces count against its quota (%s)", (kind) => {
  let server: RunningServer;
  let roots: string;
  let session: Api;
  const yunji = (...args: string[]) => runCli(args, { dataDir: server.dataDir, databaseUrl: server.databaseUrl });

  let tenants = 0;
  /** A new tenant of the admin with `maxBytes` of quota, a package holding `files`, and a maker of local spaces. */
  const tenant = async (maxBytes: number, files: [string, Buffer][]) => {
    const created = await session.post('/api/tenants', { name: `local-quota-${++tenants}` });
    expect(created.status, created.text).toBe(201);
    expect((await session.put('/api/auth/tenant', { tenant_id: created.body.id })).status).toBe(200);
    const token = (await session.post('/api/keys', { name: 'quota', role: 'admin' })).body.key as string;
    const api = client(server.url, token);
    const id = created.body.id as number;
    const set = yunji('admin', 'set-quota', '--tenant', String(id), '--max-bytes', String(maxBytes));
    expect(set.status, set.stderr).toBe(0);
    const bucketID = (await api.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID as number;
    const packageID = (await api.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID as number;
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
    const up = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    expect(up.status, await up.clone().text()).toBe(200);
    const spaceRoots = join(roots, `tenant-${id}`);
    mkdirSync(spaceRoots);
    return { id, api, packageID, localSpace: localSpaceMaker(api, spaceRoots) };
  };
  const usage = async (api: Api) => {
    const r = await api.get('/api/tenants/current/usage');
    expect(r.status, r.text).toBe(200);
    return r.body as { used_bytes: number; local_bytes: number; used_objects: number; max_bytes: number };
  };
  const exportTo = (api: Api, userSpaceID: number, packageID: number, rootPath: string) =>
    api.post('/v1/userSpace/downloadPackage', { userSpaceID, packageID, rootPath });
  const expect507 = (res: { status: number; body: any }, ...numbers: number[]) => {
    expect([res.status, res.body.code], JSON.stringify(res.body)).toEqual([507, 'OperationFailed']);
    expect(res.body.message).toMatch(/quota/);
    for (const n of numbers) expect(res.body.message).toContain(String(n));
  };

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-local-quota-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    session = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('refuses exporting a package again to a new folder past the quota, counts what was written, and leaves other tenants alone', async () => {
    const t = await tenant(MiB, [
      ['a.bin', randomBytes(200 * KiB)],
      ['b.bin', randomBytes(200 * KiB)],
    ]);
    const space = await t.localSpace();
    expect(await usage(t.api)).toMatchObject({ used_bytes: 400 * KiB, local_bytes: 0 });

    const first = await exportTo(t.api, space.id, t.packageID, 'one');
    expect(first.status, first.text).toBe(200);
    // The files on the server's disk count: used_bytes includes them, local_bytes says how much of it they are.
    expect(await usage(t.api)).toMatchObject({ used_bytes: 800 * KiB, local_bytes: 400 * KiB, used_objects: 2 });

    // 400 KiB more into the 224 KiB left: 507 with the limit, the usage and the ask; nothing written.
    expect507(await exportTo(t.api, space.id, t.packageID, 'two'), MiB, 800 * KiB, 400 * KiB);
    expect(readdirSync(space.root).filter((name) => name !== '.yunji')).toEqual(['one']);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 800 * KiB, local_bytes: 400 * KiB });

    // Writing the same files over themselves adds nothing: a replaced file gives its bytes back.
    const again = await exportTo(t.api, space.id, t.packageID, 'one');
    expect(again.status, again.text).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 800 * KiB, local_bytes: 400 * KiB });

    // The default space is the server's disk too.
    const home = ((await t.api.get('/v1/userSpace/list')).body.data.userSpaces as any[]).find((s) => s.name === 'local');
    expect507(await exportTo(t.api, home.userSpaceID, t.packageID, 'home'), MiB, 800 * KiB);
    expect(existsSync(join(home.storage.root, 'home'))).toBe(false);

    // The operator sees the same.
    const shown = yunji('admin', 'show-tenant', '--tenant', String(t.id));
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.json()).toMatchObject({ tenant_id: t.id, used_bytes: 800 * KiB, local_bytes: 400 * KiB, max_bytes: MiB });

    // Another tenant with its own room exports freely, and its count is its own.
    const other = await tenant(MiB, [['c.bin', randomBytes(300 * KiB)]]);
    const otherSpace = await other.localSpace();
    expect((await exportTo(other.api, otherSpace.id, other.packageID, 'x')).status).toBe(200);
    expect(await usage(other.api)).toMatchObject({ used_bytes: 600 * KiB, local_bytes: 300 * KiB });
    expect(await usage(t.api)).toMatchObject({ used_bytes: 800 * KiB, local_bytes: 400 * KiB });
  });

  it('lets parallel exports write no more than the quota, and counts exactly the files they left', async () => {
    const files: [string, Buffer][] = Array.from({ length: 4 }, (_, i) => [`f${i}`, randomBytes(100 * KiB)]);
    // 400 KiB of objects, room for one export of 400 KiB and half of another.
    const t = await tenant(1000 * KiB, files);
    const space = await t.localSpace();
    const answers = await Promise.all(['p1', 'p2', 'p3'].map((dir) => exportTo(t.api, space.id, t.packageID, dir)));
    // Room for 600 KiB of files: one export whole at most, and at least two refused (before or while writing).
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused.length, JSON.stringify(answers.map((a) => a.body))).toBeGreaterThanOrEqual(2);
    for (const r of refused) expect507(r, 1000 * KiB);

    const u = await usage(t.api);
    expect(u.used_bytes).toBeLessThanOrEqual(1000 * KiB);
    // Nothing on disk beyond what was counted: the files a refused export had written stay, counted.
    expect(u.local_bytes).toBe(bytesOnDisk(space.root));
    expect(u.used_bytes).toBe(400 * KiB + u.local_bytes);
  });

  it("returns what an export's or a sync's reservation has left when it ends: the count is the bytes on disk, exactly", async () => {
    // A quota far larger than the reservation's chunk (64 MiB), so each operation claims a whole chunk.
    const t = await tenant(1024 * MiB, [
      ['a.bin', randomBytes(300 * KiB)],
      ['b.bin', randomBytes(5 * KiB)],
    ]);
    const space = await t.localSpace();
    expect((await exportTo(t.api, space.id, t.packageID, 'one')).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 610 * KiB, local_bytes: 305 * KiB });
    expect(bytesOnDisk(space.root)).toBe(305 * KiB);

    const dest = await t.localSpace();
    const task = await t.api.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Manual' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: {},
      srcUserSpaceID: space.id,
      srcPath: 'one',
      destUserSpaceIDs: [dest.id],
      destPathes: ['copy'],
    });
    expect(task.body?.code, task.text).toBe('OK');
    const started = await t.api.post('/v1/spaceSyncer/runTask', { taskID: task.body.data.task.taskID });
    expect(started.body?.code, started.text).toBe('OK');
    expect((await waitForJob(t.api, started.body.data.jobID)).status).toBe('succeeded');
    expect(await usage(t.api)).toMatchObject({ used_bytes: 915 * KiB, local_bytes: 610 * KiB });
  });

  it("keeps parallel exports within the limit when one's reservation takes most of the room", async () => {
    const files: [string, Buffer][] = Array.from({ length: 4 }, (_, i) => [`f${i}`, randomBytes(100 * KiB)]);
    // Room for a 64 MiB chunk and 200 KiB: whichever export claims first holds the chunk, the others claim file by file.
    const limit = 64 * MiB + 600 * KiB;
    const t = await tenant(limit, files);
    const space = await t.localSpace();
    const answers = await Promise.all(['q1', 'q2', 'q3'].map((dir) => exportTo(t.api, space.id, t.packageID, dir)));
    for (const r of answers.filter((a) => a.status !== 200)) expect507(r, limit);
    const u = await usage(t.api);
    expect(u.used_bytes).toBeLessThanOrEqual(limit);
    expect(u.local_bytes).toBe(bytesOnDisk(space.root));
    expect(u.used_bytes).toBe(400 * KiB + u.local_bytes);
  });

  it('refuses a space sync into a local space past the quota, failing its job with the numbers, and gives back what mirror deletes remove', async () => {
    const t = await tenant(MiB, [['small', randomBytes(100 * KiB)]]);
    const source = await t.localSpace();
    const dest = await t.localSpace();
    // Put there by someone outside Yunji: not counted until a recount measures the space.
    writeTree(source.root, { 'x/a': randomBytes(400 * KiB), 'x/b': randomBytes(400 * KiB), 'x/c': randomBytes(400 * KiB) });
    const task = await t.api.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Manual' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: { delete: true },
      srcUserSpaceID: source.id,
      srcPath: 'x',
      destUserSpaceIDs: [dest.id],
      destPathes: ['copy'],
    });
    expect(task.body?.code, task.text).toBe('OK');
    const taskID = task.body.data.task.taskID as number;
    const runTask = async () => {
      const started = await t.api.post('/v1/spaceSyncer/runTask', { taskID });
      expect(started.body?.code, started.text).toBe('OK');
      return waitForJob(t.api, started.body.data.jobID);
    };

    const refused = await runTask();
    expect(refused.status, JSON.stringify(refused)).toBe('failed');
    const said = JSON.stringify(refused);
    expect(said).toContain(`quota of ${MiB} bytes is full`);
    expect(said).toMatch(/\d+ used, \d+ more asked/);
    const u = await usage(t.api);
    expect(u.used_bytes).toBeLessThanOrEqual(MiB);
    expect(u.local_bytes).toBe(bytesOnDisk(dest.root));
    expect(u.local_bytes).toBeLessThan(1200 * KiB);

    // The source emptied, the mirror sync deletes the copies and gives their bytes back.
    rmSync(join(source.root, 'x'), { recursive: true });
    mkdirSync(join(source.root, 'x'));
    const mirrored = await runTask();
    expect(mirrored.status, JSON.stringify(mirrored)).toBe('succeeded');
    expect(bytesOnDisk(dest.root)).toBe(0);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 100 * KiB, local_bytes: 0 });
  });

  it('measures the local spaces again on a recount: files changed outside Yunji, never through a symlink or a .yunji folder, a shared root once', async () => {
    const t = await tenant(MiB, [['a.bin', randomBytes(400 * KiB)]]);
    const space = await t.localSpace();
    expect((await exportTo(t.api, space.id, t.packageID, 'one')).status).toBe(200);
    expect507(await exportTo(t.api, space.id, t.packageID, 'two'), MiB);

    // Deleted outside Yunji: the recount gives the room back.
    rmSync(join(space.root, 'one'), { recursive: true });
    const recount = yunji('admin', 'recount-usage', '--tenant', String(t.id));
    expect(recount.status, recount.stderr).toBe(0);
    expect(recount.json()).toEqual({
      tenants: [
        {
          tenant_id: t.id,
          before: { used_bytes: 800 * KiB, used_objects: 1, local_bytes: 400 * KiB },
          after: { used_bytes: 400 * KiB, used_objects: 1, local_bytes: 0 },
        },
      ],
    });
    expect((await exportTo(t.api, space.id, t.packageID, 'two')).status).toBe(200);

    // Added outside Yunji: counted. A symlink to a big file elsewhere, and Yunji's own folder: not.
    const elsewhere = mkdtempSync(join(tmpdir(), 'yunji-local-quota-outside-'));
    try {
      writeFileSync(join(elsewhere, 'huge'), Buffer.alloc(2 * MiB));
      symlinkSync(join(elsewhere, 'huge'), join(space.root, 'link'));
      symlinkSync(elsewhere, join(space.root, 'linked-dir'));
      writeTree(space.root, {
        'added.bin': Buffer.alloc(50 * KiB),
        '.yunji/own': Buffer.alloc(500 * KiB),
        'deep/.yunji/own': Buffer.alloc(500 * KiB),
      });
      // A second space of the tenant on the same folder is walked once.
      const twin = await t.api.post('/v1/userSpace/create', {
        name: 'twin',
        storage: { type: 'local', root: space.root },
        shardStore: null,
      });
      expect(twin.body?.code, twin.text).toBe('OK');
      const again = yunji('admin', 'recount-usage', '--tenant', String(t.id));
      expect(again.status, again.stderr).toBe(0);
      expect(again.json().tenants[0].after).toEqual({ used_bytes: 850 * KiB, used_objects: 1, local_bytes: 450 * KiB });
      expect(await usage(t.api)).toMatchObject({ used_bytes: 850 * KiB, local_bytes: 450 * KiB });
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('charges nothing for a refused hostile path, and a file named into .yunji fails alone without being counted', async () => {
    const t = await tenant(MiB, [
      ['ok.bin', randomBytes(10 * KiB)],
      ['.yunji/shards/x', randomBytes(10 * KiB)],
    ]);
    const space = await t.localSpace();
    for (const rootPath of ['../escape', '/abs', 'a/../../b', 'nul\u0000']) {
      const res = await exportTo(t.api, space.id, t.packageID, rootPath);
      expect(res.status, `${rootPath}: ${res.text}`).toBe(400);
    }
    expect(await usage(t.api)).toMatchObject({ used_bytes: 20 * KiB, local_bytes: 0 });
    const partly = await exportTo(t.api, space.id, t.packageID, 'out');
    expect(partly.status, partly.text).toBeGreaterThanOrEqual(400);
    expect(partly.body.message).toMatch(/wrote 1 of 2 objects/);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 30 * KiB, local_bytes: 10 * KiB });
    expect(bytesOnDisk(space.root)).toBe(10 * KiB);
  });
  it('counts local files only under a byte limit, and measures them when set-quota sets one', async () => {
    // No limit: nothing can be refused, so an export's files cost no count (the last measure stands).
    const t = await tenant(0, [['a.bin', randomBytes(200 * KiB)]]);
    const space = await t.localSpace();
    expect((await exportTo(t.api, space.id, t.packageID, 'free')).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 200 * KiB, local_bytes: 0, max_bytes: 0 });
    // A limit set by the operator measures the files already there; later exports count from it.
    const set = yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(500 * KiB));
    expect(set.status, set.stderr).toBe(0);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 400 * KiB, local_bytes: 200 * KiB, max_bytes: 500 * KiB });
    expect507(await exportTo(t.api, space.id, t.packageID, 'more'), 500 * KiB, 400 * KiB, 200 * KiB);
    expect(bytesOnDisk(space.root)).toBe(200 * KiB);
  });
});
