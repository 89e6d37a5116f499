import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { call, client, keyClient, login, newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import {
  filesUnder,
  s3Client,
  s3Get,
  s3Keys,
  s3Put,
  startThrottledProxy,
  TERMINAL_STATUSES,
  until,
  waitForJob,
  type Api,
  type ThrottledProxy,
} from '../helpers/sync.ts';

/**
 * Workspace sync (docs/SYNC.md "Workspace sync", specs/001-perform-sync): the profile, performSync
 * and getSyncInfo against the real server, two-way and forced runs between local folders and an S3
 * (s3rver) folder, a seeded randomized two-way test, and a cancel half way.
 */
const kinds = await databaseKinds();
const APP = 'my-client-app-123';
const KiB = 1024;
const IN_PROGRESS = { code: -1, msg: 'Sync is in progress, please try again later', data: null };
/** The `<UTC time>` of a conflict copy's name: `name.conflict-20240102T030405Z.ext`. */
const CONFLICT = /\.conflict-(\d{8}T\d{6}Z)/;

/**
 * The randomized test's seed: YUNJI_SYNC_SEED replays a run; otherwise a new one each run, printed.
 * One seed for the whole file (both databases run the same rounds).
 */
const SEED = process.env.YUNJI_SYNC_SEED !== undefined ? Number(process.env.YUNJI_SYNC_SEED) >>> 0 : randomBytes(4).readUInt32LE(0);

/** mulberry32: a small, fast, seeded PRNG; numbers in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * File times the tests write: a clock that only goes forward, 10 s a write, from a fixed epoch, so
 * a modified file always shows a new modification time and no two writes share size and time.
 */
let clock = Date.parse('2021-06-01T00:00:00.000Z');
const tick = () => (clock += 10_000);

/** One side of a workspace as the tests see it and change it (behind Yunji's back). */
interface Side {
  label: string;
  /** Every file (relative path → bytes), Yunji's own `.yunji` folders excluded. */
  files(): Promise<Map<string, Buffer>>;
  /** Creates or overwrites; local files get the next clock time. */
  write(path: string, content: string | Buffer): Promise<void>;
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

function localSide(dir: string, label = 'local'): Side {
  return {
    label,
    files: async () =>
      new Map(
        filesUnder(dir)
          .filter((f) => !f.split('/').includes('.yunji'))
          .map((f) => [f, readFileSync(join(dir, f))]),
      ),
    write: async (path, content) => {
      const full = join(dir, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
      const t = tick();
      utimesSync(full, new Date(t), new Date(t));
    },
    remove: async (path) => unlinkSync(join(dir, path)),
    rename: async (from, to) => {
      mkdirSync(dirname(join(dir, to)), { recursive: true });
      renameSync(join(dir, from), join(dir, to));
    },
  };
}

function s3Side(s3: S3Client, bucket: string, folder: string): Side {
  const key = (path: string) => `${folder}/${path}`;
  return {
    label: 'cloud (S3)',
    files: async () => {
      const keys = (await s3Keys(s3, bucket, `${folder}/`)).filter((k) => !k.split('/').includes('.yunji'));
      return new Map(
        await Promise.all(keys.map(async (k) => [k.slice(folder.length + 1), await s3Get(s3, bucket, k)] as [string, Buffer])),
      );
    },
    write: (path, content) => s3Put(s3, bucket, key(path), Buffer.from(content)),
    remove: async (path) => {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(path) }));
    },
    rename: async (from, to) => {
      await s3Put(s3, bucket, key(to), await s3Get(s3, bucket, key(from)));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(from) }));
    },
  };
}

/** A side's files as path → text, with each conflict copy's time shown as `*` (and the times returned). */
function view(files: Map<string, Buffer>): { tree: Record<string, string>; stamps: string[] } {
  const stamps: string[] = [];
  const tree: Record<string, string> = {};
  for (const [path, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const m = CONFLICT.exec(path);
    if (m) stamps.push(m[1]!);
    tree[path.replace(CONFLICT, '.conflict-*')] = bytes.toString();
  }
  return { tree, stamps };
}

/** The first difference between two sides' files, or undefined. */
function difference(a: Map<string, Buffer>, b: Map<string, Buffer>): string | undefined {
  const pa = [...a.keys()].sort();
  const pb = [...b.keys()].sort();
  if (JSON.stringify(pa) !== JSON.stringify(pb)) return `paths differ:\n  ${JSON.stringify(pa)}\n  ${JSON.stringify(pb)}`;
  for (const p of pa)
    if (!a.get(p)!.equals(b.get(p)!))
      return `'${p}' differs: ${JSON.stringify(a.get(p)!.toString())} vs ${JSON.stringify(b.get(p)!.toString())}`;
  return undefined;
}

/** `20240102T030405Z` for a time, as conflict copies are named. */
const stampOf = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
/** `dir/name.ext` → `dir/name`: what a conflict copy's name starts with. */
const stemOf = (path: string) => {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash + 1 ? path.slice(0, dot) : path;
};

describe.each(kinds)('workspace sync on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let s3c: S3Client;
  let proxy: ThrottledProxy;
  let roots: string;
  let admin: Api;
  let viewer: Api;
  let member: Api;
  let other: Api;
  let spaceCount = 0;

  /** A new local user space of the admin's tenant on a fresh directory inside YUNJI_LOCAL_ROOTS. */
  const localSpace = async (name: string, api = admin) => {
    const root = join(roots, `${name}-${++spaceCount}`);
    mkdirSync(root, { recursive: true });
    const res = await api.post('/v1/userSpace/create', {
      name: `${name}-${spaceCount}`,
      storage: { type: 'local', root },
      shardStore: null,
    });
    expect([res.status, res.body?.code], res.text).toEqual([200, 'OK']);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };
  const s3Space = async (name: string, bucket: string, endpoint = s3.endpoint) => {
    const res = await admin.post('/v1/userSpace/create', {
      name: `${name}-${++spaceCount}`,
      storage: { type: 'MinIO', endpoint, bucket, region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: S3_CREDENTIAL.accessKeyId, secretAccessKey: S3_CREDENTIAL.secretAccessKey },
      shardStore: null,
    });
    expect([res.status, res.body?.code], res.text).toEqual([200, 'OK']);
    return { id: res.body.data.userSpace.userSpaceID as number };
  };
  const putProfile = async (local: [number, string], cloud: [number, string]) => {
    const res = await admin.put('/api/sync/workspace', {
      local: { user_space_id: local[0], path: local[1] },
      cloud: { user_space_id: cloud[0], path: cloud[1] },
    });
    expect(res.status, res.text).toBe(200);
    return res.body;
  };

  /** An envelope refusal: `{code: -1, msg, data: null}` with `status` (or any 4xx). */
  const expectFailure = (res: { status: number; body: any; text: string }, status: number | '4xx', what: string) => {
    if (status === '4xx') expect(res.status >= 400 && res.status < 500, `${what}: ${res.status} ${res.text}`).toBe(true);
    else expect(res.status, `${what}: ${res.text}`).toBe(status);
    expect(res.body, `${what}: ${res.text}`).toEqual({ code: -1, msg: expect.any(String), data: null });
    expect(res.body.msg, what).not.toBe('');
  };
  const expectStarted = (res: { status: number; body: any; text: string }, what = 'performSync') => {
    expect([res.status, res.body], `${what}: ${res.text}`).toEqual([
      200,
      { code: 0, msg: '', data: { current: 0, total: 0, info: expect.any(String), msg: '' } },
    ]);
  };
  const syncInfo = async (api = admin, method: 'GET' | 'POST' = 'POST') => {
    const res = method === 'GET' ? await api.get('/api/sync/getSyncInfo') : await api.post('/api/sync/getSyncInfo');
    expect(res.status, res.text).toBe(200);
    expect(res.body, res.text).toEqual({
      code: 0,
      msg: '',
      data: { synced: expect.any(Number), stat: expect.any(String), syncing: expect.any(Boolean), lastError: expect.any(String) },
    });
    return res.body.data as { synced: number; stat: string; syncing: boolean; lastError: string };
  };
  /** getSyncInfo until it says syncing false (the run, if any, has ended). */
  const settled = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await syncInfo();
      if (!info.syncing) return info;
      if (Date.now() > deadline) throw new Error(`still syncing after ${timeoutMs} ms: ${JSON.stringify(info)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const workspaceJobs = async (api = admin) => {
    const res = await api.get('/api/jobs?action=workspace_sync&page_size=200');
    expect(res.status, res.text).toBe(200);
    return res.body.items as any[];
  };
  const newestJob = async () => {
    const res = await admin.get('/api/jobs?action=workspace_sync&page_size=1');
    expect(res.status, res.text).toBe(200);
    return res.body.items[0];
  };
  /** performSync, wait for the end, and expect the run to have succeeded; the job and getSyncInfo. */
  const sync = async (body: Record<string, unknown> = { app: APP }) => {
    const before = Date.now();
    expectStarted(await admin.post('/api/sync/performSync', body), `performSync ${JSON.stringify(body)}`);
    const info = await settled();
    const job = await newestJob();
    if (job.status !== 'succeeded') {
      const logs = (await admin.get(`/api/jobs/${job.id}/logs`)).text;
      throw new Error(`the run did not succeed: ${JSON.stringify(job)}\nlogs: ${logs}`);
    }
    expect(info.lastError).toBe('');
    expect(info.stat).toBe(job.result.stat);
    expect(info.synced).toBeGreaterThanOrEqual(before);
    return { info, job, before };
  };

  beforeAll(async () => {
    s3 = await startS3(['ws-cloud', 'ws-slow']);
    s3c = s3Client(s3.endpoint);
    proxy = await startThrottledProxy(s3.endpoint);
    roots = mkdtempSync(join(tmpdir(), 'yunji-ws-roots-'));
    // s3rver listens on loopback, which the operator must allow.
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100', YUNJI_OUTBOUND_ALLOW: '127.0.0.1' } });
    const token = await login(server.url);
    admin = client(server.url, token);
    viewer = await keyClient(server.url, admin, 'viewer');
    member = await keyClient(server.url, admin, 'member');
    other = await newTenantClient(server.url, 'Other');
  });
  afterAll(async () => {
    if (server) expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
    await proxy?.stop();
    await s3?.stop();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('refuses performSync without a profile (400), a valid app and mode (4xx), an admin (403) or a token (401)', async () => {
    // The other tenant has no profile: 404 for the profile, a never-synced info, 400 for performSync.
    expect((await other.get('/api/sync/workspace')).status).toBe(404);
    expect(await syncInfo(other)).toEqual({ synced: 0, stat: '', syncing: false, lastError: '' });
    expect(await syncInfo(other, 'GET')).toEqual({ synced: 0, stat: '', syncing: false, lastError: '' });
    const none = await other.post('/api/sync/performSync', { app: APP, force: false, pushMode: '' });
    expectFailure(none, 400, 'no profile');
    expect(none.body.msg).toMatch(/workspace/);
    expect(await workspaceJobs(other)).toEqual([]);

    const a = await localSpace('refusals-a');
    const b = await localSpace('refusals-b');
    await putProfile([a.id, 'here'], [b.id, 'there']);
    expectFailure(await admin.post('/api/sync/performSync', {}), '4xx', 'missing app');
    expectFailure(await admin.post('/api/sync/performSync', { force: false, pushMode: '' }), '4xx', 'missing app');
    expectFailure(await admin.post('/api/sync/performSync', { app: '' }), '4xx', 'empty app');
    expectFailure(await admin.post('/api/sync/performSync', { app: 42 }), '4xx', 'app not a string');
    expectFailure(await admin.post('/api/sync/performSync', { app: APP, pushMode: 'sideways' }), '4xx', 'unknown pushMode');
    expectFailure(await admin.post('/api/sync/performSync', { app: APP, pushMode: 'FORCE-PUSH' }), '4xx', 'pushMode in capitals');
    expectFailure(await admin.post('/api/sync/performSync', { app: APP, force: 'yes' }), '4xx', 'force not a boolean');
    expectFailure(await member.post('/api/sync/performSync', { app: APP }), 403, 'member');
    expectFailure(await viewer.post('/api/sync/performSync', { app: APP }), 403, 'viewer');
    const anonymous = await call(server.url, 'POST', '/api/sync/performSync', { body: { app: APP } });
    expect(anonymous.status, anonymous.text).toBe(401);
    expect(anonymous.body, anonymous.text).toMatchObject({ code: -1, data: null });
    for (const method of ['GET', 'POST'])
      expect((await call(server.url, method, '/api/sync/getSyncInfo')).status, `${method} getSyncInfo without a token`).toBe(401);
    // Nothing ran.
    expect(await workspaceJobs()).toEqual([]);
    expect(await syncInfo()).toEqual({ synced: 0, stat: '', syncing: false, lastError: '' });
    expect(await syncInfo(viewer, 'GET')).toEqual({ synced: 0, stat: '', syncing: false, lastError: '' });
  });

  it('sets and reads the profile; refuses overlapping folders, foreign spaces and non-admins', async () => {
    const a = await localSpace('profile-a');
    const b = await localSpace('profile-b');
    const before = Date.now();
    const put = await admin.put('/api/sync/workspace', {
      local: { user_space_id: a.id, path: 'notes' },
      cloud: { user_space_id: b.id, path: 'backup/notes' },
    });
    expect(put.status, put.text).toBe(200);
    expect(put.body).toEqual({
      local: { user_space_id: a.id, path: 'notes' },
      cloud: { user_space_id: b.id, path: 'backup/notes' },
      cloud_name: '',
      updated_at: expect.any(String),
    });
    expect(Date.parse(put.body.updated_at)).toBeGreaterThanOrEqual(before - 1000);
    expect((await admin.get('/api/sync/workspace')).body).toEqual(put.body);
    const seen = await viewer.get('/api/sync/workspace');
    expect([seen.status, seen.body]).toEqual([200, put.body]);

    const body = (l: [number, string], c: [number, string]) => ({
      local: { user_space_id: l[0], path: l[1] },
      cloud: { user_space_id: c[0], path: c[1] },
    });
    // Folders of one space that overlap.
    for (const [l, c] of [
      ['x', 'x'],
      ['x', 'x/y'],
      ['x/y', 'x'],
      ['', 'x'],
      ['x', ''],
      ['x/y/z', 'x/y'],
    ]) {
      const res = await admin.put('/api/sync/workspace', body([a.id, l!], [a.id, c!]));
      expect(res.status, `'${l}' and '${c}' in one space: ${res.text}`).toBe(400);
      expect(res.body.code).toBe('bad_request');
    }
    // Another tenant's space is as absent as a missing one.
    const theirs = await localSpace('theirs', other);
    for (const [l, c] of [
      [theirs.id, b.id],
      [a.id, theirs.id],
      [a.id, 99_999_999],
    ]) {
      const res = await admin.put('/api/sync/workspace', body([l!, 'in'], [c!, 'out']));
      expect(res.status, `spaces ${l} and ${c}: ${res.text}`).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    for (const path of ['../up', '/abs', 'a/../../b'])
      expect((await admin.put('/api/sync/workspace', body([a.id, path], [b.id, 'out']))).status, `path ${path}`).toBe(400);
    expect((await admin.put('/api/sync/workspace', { local: { user_space_id: a.id, path: 'x' } })).status, 'no cloud side').toBe(400);
    // Viewers and members cannot set it; the other tenant still has none.
    expect((await viewer.put('/api/sync/workspace', body([a.id, 'p'], [b.id, 'q']))).status).toBe(403);
    expect((await member.put('/api/sync/workspace', body([a.id, 'p'], [b.id, 'q']))).status).toBe(403);
    expect((await other.get('/api/sync/workspace')).status).toBe(404);
    expect((await admin.get('/api/sync/workspace')).body).toEqual(put.body);

    // Sibling folders with a common prefix do not overlap.
    const siblings = await admin.put('/api/sync/workspace', body([a.id, 'ws'], [a.id, 'ws2']));
    expect(siblings.status, siblings.text).toBe(200);
    expect(siblings.body).toMatchObject({
      local: { user_space_id: a.id, path: 'ws' },
      cloud: { user_space_id: a.id, path: 'ws2' },
      cloud_name: '',
    });
    expect((await admin.get('/api/sync/workspace')).body).toEqual(siblings.body);
  });

  it('forgets the last sync when a side changes (the next run merges), not when the same profile is set again', async () => {
    const a = await localSpace('forget-a');
    const b = await localSpace('forget-b');
    const L = localSide(join(a.root, 'one'));
    const L2 = localSide(join(a.root, 'two'));
    const C = localSide(join(b.root, 'cloud'), 'cloud');
    await putProfile([a.id, 'one'], [b.id, 'cloud']);
    await L.write('x.txt', 'x');
    await L.write('y.txt', 'y');
    await sync({ app: APP, cloudName: '' });
    expect([...(await C.files()).keys()].sort()).toEqual(['x.txt', 'y.txt']);

    // The same profile again keeps the snapshot: a local deletion is a deletion.
    await L.remove('x.txt');
    await putProfile([a.id, 'one'], [b.id, 'cloud']);
    const kept = await sync();
    expect(kept.job.stats).toMatchObject({ deletedCloud: 1, deletedLocal: 0, uploaded: 0, downloaded: 0 });
    expect([...(await C.files()).keys()]).toEqual(['y.txt']);

    // Another local folder, which lacks y.txt: a merge (y.txt comes down), not a deletion in the cloud.
    await L2.write('z.txt', 'z');
    await putProfile([a.id, 'two'], [b.id, 'cloud']);
    const merged = await sync();
    expect(merged.job.stats).toMatchObject({ deletedCloud: 0, deletedLocal: 0, uploaded: 1, downloaded: 1 });
    expect(view(await L2.files()).tree).toEqual({ 'y.txt': 'y', 'z.txt': 'z' });
    expect(difference(await L2.files(), await C.files())).toBeUndefined();
  });

  it('answers the spec examples: started, in progress (409), info by POST and GET, force-push; a run is a workspace_sync job', async () => {
    const local = await localSpace('spec-local');
    const cloud = await s3Space('spec-cloud', 'ws-slow', proxy.url);
    const localDir = join(local.root, 'ws');
    const L = localSide(localDir);
    const C = s3Side(s3c, 'ws-slow', 'spec');
    await L.write('mine.txt', 'local file');
    await L.write('sub/also-mine.md', '# local');
    const cloudFiles: Record<string, Buffer> = {};
    for (let i = 0; i < 16; i++) cloudFiles[`remote/r${String(i).padStart(2, '0')}.bin`] = randomBytes(64 * KiB);
    for (const [p, b] of Object.entries(cloudFiles)) await C.write(p, b);
    await putProfile([local.id, 'ws'], [cloud.id, 'spec']);
    const idle = await syncInfo();
    expect(idle).toMatchObject({ syncing: false, lastError: '' });

    // Downloads at 64 KiB/s each: every file takes a second, so the run is still going below.
    proxy.setRate(64 * KiB);
    let jobID: number;
    const started = Date.now();
    try {
      const res = await admin.post('/api/sync/performSync', { app: APP, force: false, pushMode: '' });
      expectStarted(res, 'the first example');
      expect(res.body.data.info).not.toBe('');
      const job = await until('the run to be running', async () => {
        const j = await newestJob();
        if (j && TERMINAL_STATUSES.includes(j.status)) throw new Error(`ended before it was seen running: ${JSON.stringify(j)}`);
        return j?.status === 'running' ? j : undefined;
      });
      jobID = job.id;
      expect(job).toMatchObject({
        job_type: 'workspace_sync',
        reference_id: `app:${APP}`,
        description: `Workspace sync for '${APP}' (two-way)`,
        metadata: { action: 'workspace_sync' },
      });

      const again = await admin.post('/api/sync/performSync', { app: APP, pushMode: 'force-push' });
      expect([again.status, again.body], again.text).toEqual([409, IN_PROGRESS]);
      const otherApp = await admin.post('/api/sync/performSync', { app: 'another-client', force: true });
      expect([otherApp.status, otherApp.body], otherApp.text).toEqual([409, IN_PROGRESS]);
      for (const [api, method] of [
        [admin, 'POST'],
        [admin, 'GET'],
        [viewer, 'GET'],
        [viewer, 'POST'],
      ] as const) {
        expect(await syncInfo(api, method), `${method} getSyncInfo during the run`).toEqual({ ...idle, syncing: true });
      }
    } finally {
      proxy.setRate(0);
    }
    const info = await settled();
    const job = await waitForJob(admin, jobID);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(info).toEqual({ synced: expect.any(Number), stat: job.result.stat, syncing: false, lastError: '' });
    expect(info.synced).toBeGreaterThanOrEqual(started);
    expect(info.stat).toBe('uploaded 2, downloaded 16, deleted 0 locally and 0 in the cloud, 0 conflicts kept both versions, 0 unchanged');
    expect(job.stats).toMatchObject({ uploaded: 2, downloaded: 16, deletedLocal: 0, deletedCloud: 0, conflicts: 0, failed: 0 });
    expect(job.result).toEqual({ stat: info.stat, files: 18 });
    expect(await syncInfo(viewer, 'GET')).toEqual(info);
    expect(difference(await L.files(), await C.files())).toBeUndefined();
    expect([...(await L.files()).keys()].sort()).toEqual(['mine.txt', ...Object.keys(cloudFiles), 'sub/also-mine.md'].sort());
    for (const [p, b] of Object.entries(cloudFiles)) expect(readFileSync(join(localDir, p)).equals(b), p).toBe(true);

    // The second example: force-push makes the cloud equal to local.
    await C.write('cloud-only.txt', 'goes on a push');
    await L.remove('remote/r03.bin');
    const pushed = await sync({ app: APP, pushMode: 'force-push' });
    expect(pushed.job).toMatchObject({
      job_type: 'workspace_sync',
      reference_id: `app:${APP}`,
      description: `Workspace sync for '${APP}' (force-push)`,
    });
    expect(pushed.info.stat).toMatch(/^force-push: copied 0, deleted 2, 17 unchanged$/);
    expect(pushed.info.synced).toBeGreaterThan(info.synced);
    const after = await L.files();
    expect(after.size).toBe(17);
    expect(difference(after, await C.files())).toBeUndefined();

    // Every run is listed, newest first.
    expect((await workspaceJobs()).slice(0, 2).map((j) => [j.id, j.status])).toEqual([
      [pushed.job.id, 'succeeded'],
      [jobID, 'succeeded'],
    ]);
  });

  it('records a failed run in lastError, and clears it after a success', async () => {
    const local = await localSpace('failing-local');
    const missing = await s3Space('failing-cloud', 'no-such-bucket');
    await putProfile([local.id, 'ws'], [missing.id, 'x']);
    const before = await syncInfo();
    expectStarted(await admin.post('/api/sync/performSync', { app: APP }));
    const info = await settled(60_000);
    const job = await newestJob();
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(info).toEqual({
      synced: before.synced,
      stat: before.stat,
      syncing: false,
      lastError: expect.stringMatching(/bucket does not exist/),
    });

    const cloud = await localSpace('failing-fixed');
    await putProfile([local.id, 'ws'], [cloud.id, 'x']);
    const ok = await sync();
    expect(ok.info.lastError).toBe('');
    expect(ok.info.synced).toBeGreaterThan(before.synced);
  });

  /**
   * The deterministic two-way cases, against a cloud side of either kind. Each step changes the
   * sides behind Yunji's back, syncs, and expects both sides to hold exactly the named files.
   */
  const twoWayCases = async (L: Side, C: Side, profile: () => Promise<void>, cloudUnder?: (name: string) => Side) => {
    await profile();
    const expectBoth = async (want: Record<string, string>, what: string) => {
      const [l, c] = [await L.files(), await C.files()];
      expect(view(l).tree, `${what}: ${L.label}`).toEqual(want);
      expect(difference(l, c), `${what}: ${L.label} and ${C.label}`).toBeUndefined();
      return view(l).stamps;
    };
    const expectStamps = (stamps: string[], count: number, run: { before: number; job: any }) => {
      expect(stamps).toHaveLength(count);
      // The conflict time is the run's: between the request and its end, to the second.
      for (const s of stamps) {
        expect(
          s >= stampOf(run.before) && s <= stampOf(Date.parse(run.job.ended_at)),
          `conflict time ${s} within the run ${stampOf(run.before)}…${run.job.ended_at}`,
        ).toBe(true);
      }
    };

    // 1. The first run merges: one-sided files copied, the same file kept once, nothing deleted;
    //    a file new on both sides with different content keeps both versions.
    await L.write('only-local.txt', 'L1');
    await L.write('same.txt', 'the same content');
    await L.write('both-new.txt', 'local both-new');
    await L.write('docs/nested/deep.md', 'deep L');
    await C.write('only-cloud.txt', 'C1');
    await C.write('same.txt', 'the same content');
    await C.write('both-new.txt', 'cloud both-new, longer');
    await C.write('docs/c.txt', 'docs C');
    // cloud_name outlives a new profile (an earlier test may have left one): name none explicitly.
    const first = await sync({ app: APP, cloudName: '' });
    expect((await admin.get('/api/sync/workspace')).body.cloud_name).toBe('');
    expect(first.job.stats).toMatchObject({
      uploaded: 2,
      downloaded: 2,
      deletedLocal: 0,
      deletedCloud: 0,
      conflicts: 1,
      skipped: 1,
      failed: 0,
    });
    let state: Record<string, string> = {
      'both-new.conflict-*.txt': 'cloud both-new, longer',
      'both-new.txt': 'local both-new',
      'docs/c.txt': 'docs C',
      'docs/nested/deep.md': 'deep L',
      'only-cloud.txt': 'C1',
      'only-local.txt': 'L1',
      'same.txt': 'the same content',
    };
    expectStamps(await expectBoth(state, 'first merge'), 1, first);
    expect(first.job.result.files).toBe(7);

    // 2. Nothing changed: nothing moves.
    const idle = await sync();
    expect(idle.job.stats).toMatchObject({
      uploaded: 0,
      downloaded: 0,
      deletedLocal: 0,
      deletedCloud: 0,
      conflicts: 0,
      skipped: 7,
      failed: 0,
    });
    await expectBoth(state, 'a run without changes');

    // 3. New, changed and deleted on each side propagate.
    await L.write('l-new.txt', 'L new');
    await L.write('only-local.txt', 'L1 changed locally');
    await L.remove('only-cloud.txt');
    await C.write('docs/c-new.txt', 'C new');
    await C.write('docs/c.txt', 'docs C changed in the cloud');
    await C.remove('same.txt');
    const oneSided = await sync();
    expect(oneSided.job.stats).toMatchObject({ uploaded: 2, downloaded: 2, deletedLocal: 1, deletedCloud: 1, conflicts: 0, failed: 0 });
    state = {
      ...state,
      'l-new.txt': 'L new',
      'only-local.txt': 'L1 changed locally',
      'docs/c-new.txt': 'C new',
      'docs/c.txt': 'docs C changed in the cloud',
    };
    delete state['only-cloud.txt'];
    delete state['same.txt'];
    await expectBoth(state, 'one-sided changes');

    // 4. Changed on both sides: the local version keeps the name, the cloud's becomes a conflict
    //    copy, on both sides. The same change on both sides is no conflict.
    await L.write('only-local.txt', 'L both: local');
    await C.write('only-local.txt', 'L both: the cloud version');
    await L.write('docs/nested/deep.md', 'deep, the same on both');
    await C.write('docs/nested/deep.md', 'deep, the same on both');
    const both = await sync();
    expect(both.job.stats).toMatchObject({
      uploaded: 0,
      downloaded: 0,
      deletedLocal: 0,
      deletedCloud: 0,
      conflicts: 1,
      skipped: 6,
      failed: 0,
    });
    state = {
      ...state,
      'only-local.txt': 'L both: local',
      'only-local.conflict-*.txt': 'L both: the cloud version',
      'docs/nested/deep.md': 'deep, the same on both',
    };
    await expectBoth(state, 'changed on both sides');
    const copies = [...(await L.files()).keys()].filter((p) => p.startsWith('only-local.conflict-'));
    expectStamps(
      copies.map((p) => CONFLICT.exec(p)![1]!),
      1,
      both,
    );

    // 5. A deletion loses to a change on the other side: the changed file comes back.
    await L.remove('docs/c.txt');
    await C.write('docs/c.txt', 'revived by the cloud');
    await C.remove('l-new.txt');
    await L.write('l-new.txt', 'l-new kept, changed locally');
    const revived = await sync();
    expect(revived.job.stats).toMatchObject({ uploaded: 1, downloaded: 1, deletedLocal: 0, deletedCloud: 0, conflicts: 0, failed: 0 });
    state = { ...state, 'docs/c.txt': 'revived by the cloud', 'l-new.txt': 'l-new kept, changed locally' };
    await expectBoth(state, 'deleted on one side, changed on the other');

    // 6. A rename is a deletion and a creation.
    await L.rename('docs/c-new.txt', 'moved/c-renamed.txt');
    await C.rename('both-new.txt', 'renamed in the cloud.txt');
    const renamed = await sync();
    expect(renamed.job.stats).toMatchObject({ uploaded: 1, downloaded: 1, deletedLocal: 1, deletedCloud: 1, conflicts: 0, failed: 0 });
    state = { ...state, 'moved/c-renamed.txt': 'C new', 'renamed in the cloud.txt': 'local both-new' };
    delete state['docs/c-new.txt'];
    delete state['both-new.txt'];
    await expectBoth(state, 'renamed on each side');

    // 7. force-push: the cloud becomes local, extra and changed cloud files included.
    await L.write('push-only.txt', 'pushed');
    await C.write('cloud-extra.txt', 'removed by the push');
    await C.write('docs/c.txt', 'a cloud edit the push overwrites');
    const pushed = await sync({ app: APP, pushMode: 'force-push' });
    // Two copied: the two changes. deep.md, whose two sides got the same content at other times in
    // step 4, is compared by content (no snapshot vouches for it) and left alone.
    expect(pushed.info.stat).toBe('force-push: copied 2, deleted 1, 7 unchanged');
    state = { ...state, 'push-only.txt': 'pushed' };
    await expectBoth(state, 'force-push');

    // 8. force-pull: local becomes the cloud.
    await C.write('pull-only.txt', 'pulled');
    await L.write('local-extra.txt', 'removed by the pull');
    await L.write('moved/c-renamed.txt', 'a local edit the pull overwrites');
    const pulled = await sync({ app: APP, pushMode: 'force-pull', force: true });
    expect(pulled.job.description).toBe(`Workspace sync for '${APP}' (force-pull)`);
    expect(pulled.info.stat).toBe('force-pull: copied 2, deleted 1, 8 unchanged');
    state = { ...state, 'pull-only.txt': 'pulled' };
    await expectBoth(state, 'force-pull');
    // A forced run leaves a snapshot too: the next two-way run finds nothing to do.
    const calm = await sync();
    expect(calm.job.stats).toMatchObject({
      uploaded: 0,
      downloaded: 0,
      deletedLocal: 0,
      deletedCloud: 0,
      conflicts: 0,
      skipped: 10,
      failed: 0,
    });

    // 9. pushOnly (deprecated) is force-push.
    await L.write('legacy.txt', 'pushOnly');
    await C.write('legacy-extra.txt', 'removed by pushOnly');
    const legacy = await sync({ app: APP, pushOnly: true });
    expect(legacy.job.description).toBe(`Workspace sync for '${APP}' (force-push)`);
    state = { ...state, 'legacy.txt': 'pushOnly' };
    await expectBoth(state, 'pushOnly');

    // 10. A new cloudName: a fresh merge into that folder of the cloud path, deleting nothing.
    if (!cloudUnder) return;
    const vault = cloudUnder('vault');
    await vault.write('vault-only.txt', 'already in the vault');
    await vault.write('legacy.txt', 'pushOnly');
    await L.remove('pull-only.txt'); // a deletion the fresh merge does not see as one
    const cloudBefore = view(await C.files()).tree;
    const merged = await sync({ app: APP, cloudName: 'vault' });
    expect(merged.job.stats).toMatchObject({
      uploaded: 9,
      downloaded: 1,
      deletedLocal: 0,
      deletedCloud: 0,
      conflicts: 0,
      skipped: 1,
      failed: 0,
    });
    expect((await admin.get('/api/sync/workspace')).body.cloud_name).toBe('vault');
    const inVault: Record<string, string> = { ...state, 'vault-only.txt': 'already in the vault' };
    delete inVault['pull-only.txt'];
    expect(view(await L.files()).tree, 'local after the merge into the vault').toEqual(inVault);
    expect(difference(await L.files(), await vault.files()), 'local and the vault').toBeUndefined();
    // The cloud path outside the vault is as it was (its vault/ folder gained the merged files).
    const outside = Object.fromEntries(Object.entries(view(await C.files()).tree).filter(([p]) => !p.startsWith('vault/')));
    expect(outside).toEqual(Object.fromEntries(Object.entries(cloudBefore).filter(([p]) => !p.startsWith('vault/'))));
    expect(outside['pull-only.txt']).toBe('pulled');

    // The same cloudName again keeps the snapshot: a deletion propagates into the vault.
    await L.remove('legacy.txt');
    const same = await sync({ app: APP, cloudName: 'vault' });
    expect(same.job.stats).toMatchObject({ uploaded: 0, downloaded: 0, deletedLocal: 0, deletedCloud: 1, conflicts: 0, failed: 0 });
    expect([...(await vault.files()).keys()]).not.toContain('legacy.txt');
    expect(difference(await L.files(), await vault.files())).toBeUndefined();
  };

  it('two-way between two local folders: merge, propagation, conflicts, renames, forced modes and cloudName', async () => {
    const local = await localSpace('ll-local');
    const cloud = await localSpace('ll-cloud');
    await twoWayCases(
      localSide(join(local.root, 'work')),
      localSide(join(cloud.root, 'cloud', 'ws'), 'cloud'),
      () => putProfile([local.id, 'work'], [cloud.id, 'cloud/ws']).then(() => undefined),
      (name) => localSide(join(cloud.root, 'cloud', 'ws', name), `cloud/${name}`),
    );
  });

  it('two-way between a local folder and an S3 folder: the same cases', async () => {
    const local = await localSpace('ls-local');
    const cloud = await s3Space('ls-cloud', 'ws-cloud');
    await twoWayCases(
      localSide(join(local.root, 'work')),
      s3Side(s3c, 'ws-cloud', 'cases/ws'),
      () => putProfile([local.id, 'work'], [cloud.id, 'cases/ws']).then(() => undefined),
      (name) => s3Side(s3c, 'ws-cloud', `cases/ws/${name}`),
    );
  });

  it('two conflicts on one file within the same second keep both cloud versions', async () => {
    const local = await localSpace('twice-local');
    const cloud = await localSpace('twice-cloud');
    await putProfile([local.id, 'w'], [cloud.id, 'w']);
    const L = localSide(join(local.root, 'w'));
    const C = localSide(join(cloud.root, 'w'), 'cloud');
    // Both runs at the start of one second (conflict copies are named to the second); a run takes
    // a few tens of milliseconds. Were they a second apart, the test would pass anyway.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
    await L.write('a.txt', 'local, first');
    await C.write('a.txt', 'cloud, first version');
    const first = await sync({ app: APP, cloudName: '' });
    expect(first.job.stats).toMatchObject({ conflicts: 1 });
    await L.write('a.txt', 'local, second edit');
    await C.write('a.txt', 'cloud, second version!');
    const second = await sync();
    expect(second.job.stats).toMatchObject({ conflicts: 1 });
    const files = await L.files();
    expect(difference(files, await C.files())).toBeUndefined();
    const contents = [...files.values()].map((b) => b.toString()).sort();
    expect(
      contents,
      `files: ${JSON.stringify(view(files).tree)} (runs started ${first.job.started_at} and ${second.job.started_at})`,
    ).toEqual(['cloud, first version', 'cloud, second version!', 'local, second edit'].sort());
    expect(files.get('a.txt')?.toString()).toBe('local, second edit');
  });

  /**
   * The randomized two-way test: seeded random changes on random sides, a sync after each round,
   * and four checks after every sync (see below). 200 rounds on each database (about 15 s on
   * SQLite and 35 s on PostgreSQL here).
   */
  const ROUNDS = 200;
  it(`randomized two-way sync keeps both sides equal and loses no version (${ROUNDS} rounds)`, { timeout: 180_000 }, async () => {
    console.log(`workspace sync randomized test on ${kind}: seed ${SEED} (replay with YUNJI_SYNC_SEED=${SEED})`);
    const rand = mulberry32(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const local = await localSpace('rnd-local');
    const cloud = await localSpace('rnd-cloud');
    await putProfile([local.id, 'l'], [cloud.id, 'c']);
    const sides = { local: localSide(join(local.root, 'l')), cloud: localSide(join(cloud.root, 'c'), 'cloud') } as const;
    // Few names, some without an extension and some nested, so that paths are often reused.
    const NAMES = ['a.txt', 'b.md', 'c', 'd1/e.txt', 'd1/f.bin', 'd2/sub/g.txt', 'd2/h', 'i.log'];
    let versions = 0;
    const newContent = () => `v${++versions} of seed ${SEED}|${'x'.repeat(int(40))}`;
    const history: string[] = [];

    for (let round = 1; round <= ROUNDS; round++) {
      const pre = { local: await sides.local.files(), cloud: await sides.cloud.files() };
      const touched = { local: new Set<string>(), cloud: new Set<string>() };
      /** Versions (contents) the test itself deleted or overwrote this round. */
      const removed = new Set<string>();
      const ops: string[] = [];
      const count = 1 + int(5);
      for (let i = 0; i < count; i++) {
        const which = pick(['local', 'cloud'] as const);
        const side = sides[which];
        const files = await side.files();
        const existing = [...files.keys()].sort();
        const free = NAMES.filter((n) => !files.has(n));
        let op = rand();
        // Keep the trees small: more deletions once they grow (conflict copies add up).
        if (existing.length === 0) op = 0;
        else if (existing.length > 10) op = 0.3 + op * 0.7;
        if (op < 0.3 && free.length > 0) {
          const path = pick(free);
          const content = newContent();
          await side.write(path, content);
          touched[which].add(path);
          ops.push(`${which}: create ${path} = ${content.slice(0, content.indexOf('|'))}`);
        } else if (op < 0.65) {
          const path = pick(existing);
          removed.add(files.get(path)!.toString());
          const content = newContent();
          await side.write(path, content);
          touched[which].add(path);
          ops.push(`${which}: modify ${path} = ${content.slice(0, content.indexOf('|'))}`);
        } else if (op < 0.85 || free.length === 0) {
          const path = pick(existing);
          removed.add(files.get(path)!.toString());
          await side.remove(path);
          touched[which].add(path);
          ops.push(`${which}: delete ${path}`);
        } else {
          const from = pick(existing);
          const to = pick(free);
          await side.rename(from, to);
          touched[which].add(from);
          touched[which].add(to);
          ops.push(`${which}: rename ${from} -> ${to}`);
        }
      }
      history.push(`round ${round}: ${ops.join('; ')}`);
      const now = { local: await sides.local.files(), cloud: await sides.cloud.files() };
      const context = () =>
        `seed ${SEED}, round ${round} on ${kind}\n${history.slice(-5).join('\n')}\nbefore the sync:\n  local ${JSON.stringify(view(now.local).tree)}\n  cloud ${JSON.stringify(view(now.cloud).tree)}`;

      const { job } = await sync(round === 1 ? { app: APP, cloudName: '' } : { app: APP });
      const after = { local: await sides.local.files(), cloud: await sides.cloud.files() };
      const report = () =>
        `${context()}\nafter:\n  local ${JSON.stringify(view(after.local).tree)}\n  cloud ${JSON.stringify(view(after.cloud).tree)}\nstat: ${job.result.stat}`;

      // (a) Both sides hold the same paths with the same bytes.
      const diff = difference(after.local, after.cloud);
      if (diff) expect.fail(`(a) the sides differ: ${diff}\n${report()}`);

      // (b) Every version either side held before the sync, and the test did not itself delete or
      //     overwrite, is still there: at one of its paths, or as a conflict copy of one of them.
      const where = new Map<string, Set<string>>();
      for (const files of [now.local, now.cloud])
        for (const [p, b] of files) where.set(b.toString(), (where.get(b.toString()) ?? new Set()).add(p));
      const nowAt = new Map<string, string[]>();
      for (const [p, b] of after.local) nowAt.set(b.toString(), [...(nowAt.get(b.toString()) ?? []), p]);
      for (const [content, paths] of where) {
        if (removed.has(content)) continue;
        const found = (nowAt.get(content) ?? []).some(
          (q) => paths.has(q) || [...paths].some((p) => q.startsWith(stemOf(p)) && q.includes('.conflict-')),
        );
        if (!found)
          expect.fail(`(b) version ${content.slice(0, content.indexOf('|'))} (was at ${[...paths].join(', ')}) is lost\n${report()}`);
      }

      // (c) A path only one side touched ends as that side left it (a new or changed file copied,
      //     a deleted one deleted); (d) a path neither touched keeps its content.
      for (const [mine, theirs] of [
        ['local', 'cloud'],
        ['cloud', 'local'],
      ] as const) {
        for (const p of touched[mine]) {
          if (touched[theirs].has(p)) continue;
          const want = now[mine].get(p)?.toString();
          const got = after.local.get(p)?.toString();
          // A conflict copy this run made may take a name the test just freed (its time is only to
          // the second): the version is kept, under a name that existed before.
          const copyOfAnother =
            want === undefined && CONFLICT.test(p) && got !== undefined && !removed.has(got) && !(where.get(got)?.has(p) ?? false);
          if (want !== got && !copyOfAnother)
            expect.fail(
              `(c) '${p}', changed only ${mine === 'local' ? 'locally' : 'in the cloud'}, is ${JSON.stringify(got)}, not ${JSON.stringify(want)}\n${report()}`,
            );
        }
      }
      for (const [p, b] of pre.local) {
        if (touched.local.has(p) || touched.cloud.has(p)) continue;
        if (!after.local.get(p)?.equals(b))
          expect.fail(
            `(d) '${p}', untouched, became ${JSON.stringify(after.local.get(p)?.toString())} (was ${JSON.stringify(b.toString())})\n${report()}`,
          );
      }
    }
    console.log(`workspace sync randomized test on ${kind}: ${ROUNDS} rounds passed (seed ${SEED})`);
  });

  it('a cancelled run leaves only whole files on both sides, and the next run completes them', async () => {
    const local = await localSpace('cancel-local');
    const cloud = await s3Space('cancel-cloud', 'ws-slow', proxy.url);
    const localDir = join(local.root, 'ws');
    const L = localSide(localDir);
    const C = s3Side(s3c, 'ws-slow', 'cancel');
    const want = new Map<string, Buffer>();
    const COUNT = 24;
    for (let i = 0; i < COUNT; i++) {
      const b = randomBytes(128 * KiB);
      want.set(`big/f${String(i).padStart(2, '0')}.bin`, b);
      await C.write(`big/f${String(i).padStart(2, '0')}.bin`, b);
    }
    for (let i = 0; i < 6; i++) {
      const b = Buffer.from(`local file ${i} ${randomBytes(8).toString('hex')}`);
      want.set(`up/l${i}.txt`, b);
      await L.write(`up/l${i}.txt`, b);
    }
    await putProfile([local.id, 'ws'], [cloud.id, 'cancel']);
    /** Every file on the side is one of the files being synced, whole. */
    const whole = (files: Map<string, Buffer>, what: string) => {
      for (const [p, b] of files)
        expect(want.get(p)?.equals(b), `${what}: '${p}' (${b.length} bytes) is not a whole file of the sync`).toBe(true);
    };

    // 128 KiB/s per download: a second a file, 8 at a time, so the run takes about three seconds.
    proxy.setRate(128 * KiB);
    let jobID: number;
    try {
      expectStarted(await admin.post('/api/sync/performSync', { app: APP, cloudName: '' }));
      const job = await until('the run to have downloaded some files', async () => {
        const j = await newestJob();
        if (TERMINAL_STATUSES.includes(j.status)) throw new Error(`ended before it could be cancelled: ${JSON.stringify(j)}`);
        return j.status === 'running' && filesUnder(join(localDir, 'big')).length >= 4 ? j : undefined;
      });
      jobID = job.id;
      const again = await admin.post('/api/sync/performSync', { app: APP });
      expect([again.status, again.body], again.text).toEqual([409, IN_PROGRESS]);
      const cancel = await admin.post(`/api/jobs/${jobID}/cancel`);
      expect(cancel.status, cancel.text).toBe(200);
      const ended = await waitForJob(admin, jobID);
      expect(ended.status, JSON.stringify(ended)).toBe('cancelled');
    } finally {
      proxy.setRate(0);
    }
    expect((await settled()).syncing).toBe(false);
    const [l, c] = [await L.files(), await C.files()];
    whole(l, 'local after the cancel');
    whole(c, 'cloud after the cancel');
    expect(filesUnder(join(localDir, 'big')).length, 'the cancel stopped the run before the end').toBeLessThan(COUNT);
    // Nothing was deleted by the cancelled run.
    for (let i = 0; i < COUNT; i++) expect(c.has(`big/f${String(i).padStart(2, '0')}.bin`)).toBe(true);
    for (let i = 0; i < 6; i++) expect(l.has(`up/l${i}.txt`)).toBe(true);

    const next = await sync();
    expect(next.job.stats).toMatchObject({ deletedLocal: 0, deletedCloud: 0, conflicts: 0, failed: 0 });
    const [l2, c2] = [await L.files(), await C.files()];
    expect(difference(l2, c2)).toBeUndefined();
    expect([...l2.keys()].sort()).toEqual([...want.keys()].sort());
    whole(l2, 'local after the next run');
  });
});
