import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { localSpaceMaker, TERMINAL_STATUSES, until, waitForJob, writeTree } from '../helpers/sync.ts';

const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

type Api = ReturnType<typeof client>;

/**
 * Yunji keeps a space's object bytes in its `.yunji` folder. Nothing a client directs into a space
 * (a package export, a space sync, a workspace sync) may write, remove or make a folder at a key
 * with a `.yunji` segment: such a file fails on its own, with a clear message, and the stored bytes
 * stay what their objects' hashes say.
 */
describe.each(kinds)("client-directed writes stay out of a space's reserved folder (%s)", (kind) => {
  let server: RunningServer;
  let roots: string;
  let token: string;
  let admin: Api;
  let localSpace: ReturnType<typeof localSpaceMaker>;
  let bucketID: number;

  const newPackage = async (name: string) => {
    const res = await admin.post('/v1/package/create', { bucketID, name });
    expect(res.body?.code, res.text).toBe('OK');
    return res.body.data.package.packageID as number;
  };
  const upload = async (packageID: number, files: [string, Buffer][], affinity?: number) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID, ...(affinity ? { affinity } : {}) }));
    for (const [path, content] of files) form.append('files', new Blob([content]), encodeURIComponent(path));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const download = async (objectID: number) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const failedItems = (job: any) => (job.errors as { item?: string; message: string }[]).filter((e) => e.item !== undefined);

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-sec-reserved-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    token = await login(server.url);
    admin = client(server.url, token);
    localSpace = localSpaceMaker(admin, roots);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'reserved' })).body.data.bucket.bucketID;
  });
  afterAll(async () => {
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('does not let an export replace a stored shard: the other object keeps its own bytes', async () => {
    const content = Buffer.from(`the original ${randomBytes(16).toString('hex')}`);
    const hash = sha(content);
    const original = await upload(await newPackage('original'), [['original.txt', content]]);
    expect(original.body.code, JSON.stringify(original.body)).toBe('OK');
    const objectID = original.body.data.uploadeds[0].objectID as number;

    // Same size, other bytes, at the path of the original's shard in the default space.
    const forged = Buffer.alloc(content.length, 'x');
    const attack = await newPackage('attack');
    const planted = await upload(attack, [
      [`.yunji/shards/${hash.slice(0, 2)}/${hash}`, forged],
      ['deep/.yunji/tmp/x', Buffer.from('also reserved')],
      ['fine.txt', Buffer.from('fine')],
    ]);
    expect(planted.body.code, JSON.stringify(planted.body)).toBe('OK');
    const spaces = (await admin.get('/v1/userSpace/list')).body.data.userSpaces;
    const home = spaces.find((s: any) => s.name === 'local');
    const out = await admin.post('/v1/userSpace/downloadPackage', { userSpaceID: home.userSpaceID, packageID: attack, rootPath: '' });

    const got = await download(objectID);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(content), `the original now downloads as ${JSON.stringify(got.bytes.toString())}`).toBe(true);
    // The reserved files fail one by one, saying why; the rest is written.
    expect(out.status, out.text).toBeGreaterThanOrEqual(400);
    expect(out.body.message, out.text).toMatch(/wrote 1 of 3 objects/);
    expect(out.body.message, out.text).toMatch(/'\.yunji\/shards\/.*where Yunji keeps its own data/);
    const homeRoot = home.storage.root as string;
    expect(readFileSync(join(homeRoot, 'fine.txt'), 'utf8')).toBe('fine');
    expect(existsSync(join(homeRoot, 'deep'))).toBe(false);

    // The same through a folder of the space: the reserved segment anywhere is refused.
    const sub = await admin.post('/v1/userSpace/downloadPackage', {
      userSpaceID: home.userSpaceID,
      packageID: attack,
      rootPath: 'exports',
    });
    expect(sub.status, sub.text).toBeGreaterThanOrEqual(400);
    expect(existsSync(join(homeRoot, 'exports', '.yunji'))).toBe(false);
    expect(existsSync(join(homeRoot, 'exports', 'deep', '.yunji'))).toBe(false);
    expect((await download(objectID)).bytes.equals(content)).toBe(true);
  });

  it('does not let a space sync plant a file where a destination keeps its shards', async () => {
    const source = await localSpace();
    writeTree(source.root, { 'w/.yunji': 'a file named like the reserved folder', 'w/ok.txt': 'ok' });
    // The destination keeps its object bytes in `w/.yunji` (its working dir is `w`), none yet.
    const dest = await localSpace({ workingDir: 'w', shardStore: { maxSize: 0 } });
    const task = await admin.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Manual' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: { noEmptyDirectories: false },
      srcUserSpaceID: source.id,
      srcPath: '',
      destUserSpaceIDs: [dest.id],
      destPathes: [''],
    });
    expect(task.body?.code, task.text).toBe('OK');
    const run = await admin.post('/v1/spaceSyncer/runTask', { taskID: task.body.data.task.taskID });
    expect(run.body?.code, run.text).toBe('OK');
    const job = await waitForJob(admin, run.body.data.jobID);

    expect(readFileSync(join(dest.root, 'w', 'ok.txt'), 'utf8')).toBe('ok');
    expect(
      !existsSync(join(dest.root, 'w', '.yunji')) || statSync(join(dest.root, 'w', '.yunji')).isDirectory(),
      "a file sits at the destination's reserved folder",
    ).toBe(true);
    const bytes = randomBytes(1000);
    const up = await upload(await newPackage('after-space-sync'), [['after.bin', bytes]], dest.id);
    expect(up.body.code, JSON.stringify(up.body)).toBe('OK');
    expect((await download(up.body.data.uploadeds[0].objectID)).bytes.equals(bytes)).toBe(true);
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(failedItems(job).map((e) => e.item)).toEqual(['w/.yunji']);
    expect(failedItems(job)[0]!.message).toMatch(/\.yunji/);
  });

  it('does not let a workspace sync plant a file where the cloud side keeps its shards', async () => {
    const local = await localSpace();
    writeTree(local.root, { 'c/.yunji': 'a file named like the reserved folder', 'c/fine.txt': 'fine' });
    const cloud = await localSpace({ workingDir: 'c', shardStore: { maxSize: 0 } });
    const profile = await admin.put('/api/sync/workspace', {
      local: { user_space_id: local.id, path: '' },
      cloud: { user_space_id: cloud.id, path: '' },
    });
    expect(profile.status, profile.text).toBe(200);
    const started = await admin.post('/api/sync/performSync', { app: 'reserved-test' });
    expect([started.status, started.body?.code], started.text).toEqual([200, 0]);
    const job = await until('the workspace sync to end', async () => {
      const listed = await admin.get('/api/jobs?action=workspace_sync&page_size=1');
      const newest = listed.body.items[0];
      return newest && TERMINAL_STATUSES.includes(newest.status) ? newest : undefined;
    });

    expect(readFileSync(join(cloud.root, 'c', 'fine.txt'), 'utf8')).toBe('fine');
    expect(
      !existsSync(join(cloud.root, 'c', '.yunji')) || statSync(join(cloud.root, 'c', '.yunji')).isDirectory(),
      "a file sits at the cloud side's reserved folder",
    ).toBe(true);
    const bytes = randomBytes(1000);
    const up = await upload(await newPackage('after-workspace-sync'), [['after.bin', bytes]], cloud.id);
    expect(up.body.code, JSON.stringify(up.body)).toBe('OK');
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(failedItems(job).map((e) => e.item)).toEqual(['c/.yunji']);
    expect(failedItems(job)[0]!.message).toMatch(/\.yunji/);
  });
});
