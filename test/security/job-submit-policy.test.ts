import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, keyClient, login, newTenantClient, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';
import { filesUnder, waitForJob, type Api } from '../helpers/sync.ts';

/**
 * A job of any action can be asked for through generic paths (`POST /api/jobs`, interval triggers,
 * follow-up buttons). Each action says who may ask for it there and checks that its ids are the
 * tenant's; `delete_user_data` and `workspace_sync` are asked for only through their own routes,
 * which hold the admin check, the delay and the one-at-a-time key.
 */
const kinds = await databaseKinds();

async function addMember(
  base: string,
  admin: Api,
  email: string,
  role: string,
): Promise<{ id: number; email: string; api: Api; token: string }> {
  const invite = await admin.post('/api/users/invitations', { email, role });
  if (invite.status !== 201) throw new Error(`invite failed: ${invite.status} ${invite.text}`);
  const accepted = await call(base, 'POST', '/api/auth/invitations/accept', {
    body: { token: invite.body.invitation_token, password: `${email}-pw` },
  });
  if (accepted.status !== 200) throw new Error(`accept failed: ${accepted.status} ${accepted.text}`);
  return { id: accepted.body.user.id, email, api: client(base, accepted.body.token), token: accepted.body.token };
}

/** Runs one write on the server's database behind its back (as a row left by an older version would be). */
async function writeDb(server: RunningServer, sql: string): Promise<void> {
  if (server.databaseUrl) {
    const c = new pg.Client({ connectionString: server.databaseUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
    return;
  }
  const db = new BetterSqlite3(join(server.dataDir, 'yunji.db'));
  try {
    db.pragma('busy_timeout = 10000');
    db.prepare(sql).run();
  } finally {
    db.close();
  }
}

describe.each(kinds)('job submission policy on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let admin: Api;
  let adminKey: Api;
  let member: Api;
  let memberId: number;
  let memberKey: Api;
  let viewerKey: Api;
  let projectKey: string;
  let victim: { id: number; email: string; token: string };
  let packageID: number;
  let bucketID: number;
  let spaceA: { id: number; root: string };
  let spaceB: { id: number; root: string };
  let sourceId: number;
  let foreign: { spaceId: number; bucketId: number; packageId: number; sourceId: number };

  const localSpace = async (api: Api, name: string) => {
    const root = join(roots, name);
    mkdirSync(root, { recursive: true });
    const res = await api.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
    if (res.body.code !== 'OK') throw new Error(`userSpace/create: ${res.status} ${res.text}`);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };
  const upload = async (token: string, pkg: number, name: string) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID: pkg }));
    form.append('files', new Blob([Buffer.from(`content of ${name}`)]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(res.status).toBe(200);
  };
  const objectPaths = async () =>
    ((await admin.get(`/v1/object/listByPath?packageID=${packageID}&path=&isPrefix=true`)).body.data.objects as { path: string }[])
      .map((o) => o.path)
      .sort();
  const jobsOf = async (action: string) =>
    (await admin.get(`/api/jobs?action=${action}&page_size=200`)).body.items as { id: number; status: string }[];

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-policy-roots-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100', YUNJI_SHARD_GRACE: '0' } });
    const adminToken = await login(server.url);
    admin = client(server.url, adminToken);
    projectKey = (await admin.get('/api/auth/session')).body.current_tenant.project_key;
    adminKey = await keyClient(server.url, admin, 'admin');
    viewerKey = await keyClient(server.url, admin, 'viewer');
    const m = await addMember(server.url, admin, 'member@example.com', 'member');
    member = m.api;
    memberId = m.id;
    memberKey = await keyClient(server.url, member, 'member');
    const v = await addMember(server.url, admin, 'victim@example.com', 'member');
    victim = { id: v.id, email: v.email, token: v.token };

    bucketID = (await admin.post('/v1/bucket/create', { name: 'shared' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
    await upload(victim.token, packageID, 'victim/one.txt');
    await upload(victim.token, packageID, 'victim/two.txt');

    spaceA = await localSpace(admin, 'a');
    spaceB = await localSpace(admin, 'b');
    mkdirSync(join(spaceA.root, 'ws-local'), { recursive: true });
    writeFileSync(join(spaceA.root, 'ws-local', 'keep.txt'), 'local file');
    mkdirSync(join(spaceB.root, 'ws-cloud'), { recursive: true });
    writeFileSync(join(spaceB.root, 'ws-cloud', 'cloud-only.txt'), 'a cloud file a force-push would delete');
    expect(
      (
        await admin.put('/api/sync/workspace', {
          local: { user_space_id: spaceA.id, path: 'ws-local' },
          cloud: { user_space_id: spaceB.id, path: 'ws-cloud' },
        })
      ).status,
    ).toBe(200);
    mkdirSync(join(roots, 'source'), { recursive: true });
    writeFileSync(join(roots, 'source', 'in.txt'), 'from the source');
    const source = await admin.post('/api/sync/sources', {
      name: 'src',
      type: 'local',
      config: { path: join(roots, 'source') },
      package_id: packageID,
    });
    expect(source.status).toBe(201);
    sourceId = source.body.id;

    // Another tenant with a space, a bucket, a package and a source of its own.
    const other = await newTenantClient(server.url, 'Other');
    const theirSpace = await localSpace(other, 'theirs');
    const theirBucket = (await other.post('/v1/bucket/create', { name: 'theirs' })).body.data.bucket.bucketID;
    const theirPackage = (await other.post('/v1/package/create', { bucketID: theirBucket, name: 'tp' })).body.data.package.packageID;
    // A directory of its own: no tenant's local source may overlap another's.
    mkdirSync(join(roots, 'their-source'), { recursive: true });
    const theirSource = await other.post('/api/sync/sources', {
      name: 'their-src',
      type: 'local',
      config: { path: join(roots, 'their-source') },
      package_id: theirPackage,
    });
    expect(theirSource.status).toBe(201);
    foreign = { spaceId: theirSpace.id, bucketId: theirBucket, packageId: theirPackage, sourceId: theirSource.body.id };
  });
  afterAll(async () => {
    if (server) expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('refuses delete_user_data through POST /api/jobs for every role and credential: nothing runs, the victim keeps their objects', async () => {
    const before = await objectPaths();
    expect(before).toEqual(['victim/one.txt', 'victim/two.txt']);
    for (const [who, api] of [
      ['member session', member],
      ['member key', memberKey],
      ['admin session', admin],
      ['admin key', adminKey],
    ] as const) {
      for (const params of [{ userId: victim.id, email: victim.email }, { userId: victim.id }, { email: victim.email }]) {
        const res = await api.post('/api/jobs', { action: 'delete_user_data', params, start_at: new Date().toISOString() });
        expect(res.status, `${who} ${JSON.stringify(params)}`).toBe(403);
        expect(res.body.code).toBe('forbidden');
        expect(res.body.message).toMatch(/delete_user_data/);
      }
    }
    expect(await jobsOf('delete_user_data')).toEqual([]);
    // A job that had been made would have run by now (workers poll every 100 ms); the objects stay.
    const probe = await member.post('/api/jobs', { action: 'noop' });
    await waitForJob(admin, probe.body.id);
    expect(await objectPaths()).toEqual(before);
  });

  it('refuses workspace_sync through POST /api/jobs, forced or not: the cloud folder is untouched and no run holds the key', async () => {
    for (const api of [member, memberKey, admin, adminKey]) {
      for (const params of [
        { app: 'x', pushMode: 'force-push', force: true },
        { app: 'x', pushMode: 'force-pull', force: false },
        { app: 'x', pushMode: '', force: false },
      ]) {
        const res = await api.post('/api/jobs', { action: 'workspace_sync', params });
        expect(res.status, JSON.stringify(params)).toBe(403);
        expect(res.body.code).toBe('forbidden');
      }
    }
    expect(await jobsOf('workspace_sync')).toEqual([]);
    expect(filesUnder(join(spaceB.root, 'ws-cloud'))).toEqual(['cloud-only.txt']);
  });

  it('lets members submit member actions with ids of their own tenant only, re-checked on submit; viewers submit nothing', async () => {
    for (const api of [member, memberKey]) {
      const noop = await api.post('/api/jobs', { action: 'noop' });
      expect(noop.status).toBe(201);
    }
    const viewerNoop = await viewerKey.post('/api/jobs', { action: 'noop' });
    expect(viewerNoop.status).toBe(403);
    expect(viewerNoop.body.code).toBe('forbidden');
    expect((await member.post('/api/jobs', { action: 'no_such_action' })).status).toBe(400);

    const spaceSync = (src: number, dest: number, extra: Record<string, unknown> = {}) => ({
      action: 'space_sync',
      params: {
        srcUserSpaceID: src,
        srcPath: 'ws-local',
        dests: [{ userSpaceID: dest, path: 'copy' }],
        mode: { type: 'Full' },
        options: {},
        ...extra,
      },
    });
    const cases: [string, Record<string, unknown>, number][] = [
      ['space_sync to a foreign space', spaceSync(spaceA.id, foreign.spaceId), 404],
      ['space_sync from a foreign space', spaceSync(foreign.spaceId, spaceA.id), 404],
      [
        'space_sync into itself',
        {
          action: 'space_sync',
          params: {
            srcUserSpaceID: spaceA.id,
            srcPath: 'ws-local',
            dests: [{ userSpaceID: spaceA.id, path: 'ws-local/inner' }],
            mode: { type: 'Full' },
          },
        },
        400,
      ],
      ['space_sync with an escaping path', spaceSync(spaceA.id, spaceB.id, { srcPath: '../b' }), 400],
      ['space_sync naming a missing task', spaceSync(spaceA.id, spaceB.id, { taskID: 999999 }), 404],
      [
        'package_from_space into a foreign bucket',
        { action: 'package_from_space', params: { userSpaceID: spaceA.id, path: 'ws-local', bucketID: foreign.bucketId, name: 'stolen' } },
        404,
      ],
      [
        'package_from_space from a foreign space',
        { action: 'package_from_space', params: { userSpaceID: foreign.spaceId, path: '', bucketID, name: 'stolen' } },
        404,
      ],
      [
        'package_to_space of a foreign package',
        { action: 'package_to_space', params: { userSpaceID: spaceA.id, packageID: foreign.packageId, rootPath: 'out' } },
        404,
      ],
      [
        'package_to_space into a foreign space',
        { action: 'package_to_space', params: { userSpaceID: foreign.spaceId, packageID, rootPath: 'out' } },
        404,
      ],
      ['source_sync of a foreign source', { action: 'source_sync', params: { sourceId: foreign.sourceId } }, 404],
    ];
    const before = (await admin.get('/api/jobs?page_size=1')).body.meta;
    for (const [what, body, status] of cases) {
      for (const api of [member, memberKey]) {
        const res = await api.post('/api/jobs', body);
        expect(res.status, `${what}: ${res.text}`).toBe(status);
        expect(typeof res.body.message).toBe('string');
      }
    }
    // Nothing refused was recorded.
    expect((await admin.get('/api/jobs?page_size=1')).body.meta).toEqual(before);

    // With the tenant's own ids they run.
    const ok = [
      spaceSync(spaceA.id, spaceB.id),
      { action: 'package_from_space', params: { userSpaceID: spaceA.id, path: 'ws-local', bucketID, name: 'imported' } },
      { action: 'package_to_space', params: { userSpaceID: spaceB.id, packageID, rootPath: 'exported' } },
    ];
    for (const body of ok) {
      const res = await member.post('/api/jobs', body);
      expect(res.status, `${body.action}: ${res.text}`).toBe(201);
      expect((await waitForJob(admin, res.body.id)).status, body.action).toBe('succeeded');
    }
    for (const body of [{ action: 'space_sync' }, { action: 'package_from_space' }, { action: 'source_sync' }]) {
      expect((await viewerKey.post('/api/jobs', { ...body, params: {} })).status, body.action).toBe(403);
    }
  });

  it('runs source_sync one at a time per source, whichever path asks for it', async () => {
    const first = await member.post('/api/jobs', {
      action: 'source_sync',
      params: { sourceId },
      start_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    expect(first.status).toBe(201);
    // The source's own route and a second generic submit find the run already pending.
    expect((await member.post('/api/sync/jobs', { source: 'src' })).status).toBe(409);
    expect((await memberKey.post('/api/jobs', { action: 'source_sync', params: { sourceId }, concurrency_key: 'mine' })).status).toBe(409);
    expect((await member.post(`/api/jobs/${first.body.id}/cancel`)).status).toBe(200);
    const viaRoute = await member.post('/api/sync/jobs', { source: 'src' });
    expect(viaRoute.status).toBe(200);
    expect((await waitForJob(admin, viaRoute.body.id)).status).toBe('succeeded');
  });

  it('applies the same rules to interval triggers', async () => {
    const triggers = async () => (await admin.get('/api/jobs/triggers')).body.items as unknown[];
    const before = await triggers();
    for (const api of [admin, adminKey]) {
      const del = await api.post('/api/jobs/triggers', {
        action: 'delete_user_data',
        params: { userId: victim.id, email: victim.email },
        interval: 60,
        run_now: true,
      });
      expect(del.status).toBe(403);
      expect(del.body.code).toBe('forbidden');
      const ws = await api.post('/api/jobs/triggers', {
        action: 'workspace_sync',
        params: { app: 'x', pushMode: 'force-push', force: true },
        interval: 60,
        run_now: true,
      });
      expect(ws.status).toBe(403);
      const foreignSync = await api.post('/api/jobs/triggers', {
        action: 'space_sync',
        params: { srcUserSpaceID: foreign.spaceId, srcPath: '', dests: [{ userSpaceID: spaceA.id, path: 'x' }], mode: { type: 'Full' } },
        interval: 60,
      });
      expect(foreignSync.status).toBe(404);
    }
    expect((await member.post('/api/jobs/triggers', { action: 'noop', interval: 60 })).status).toBe(403);
    expect(await triggers()).toEqual(before);
    expect(await jobsOf('delete_user_data')).toEqual([]);
    expect(await jobsOf('workspace_sync')).toEqual([]);
    expect(await objectPaths()).toContain('victim/one.txt');
    // An admin's legitimate trigger still works.
    const ok = await admin.post('/api/jobs/triggers', { action: 'noop', interval: 3600 });
    expect(ok.status).toBe(201);
    expect((await admin.delete(`/api/jobs/triggers/${ok.body.id}`)).status).toBe(204);
  });

  it('makes no job from a trigger of a route-only action left in the database by an older version', async () => {
    const now = Date.now();
    const params = JSON.stringify({ userId: victim.id, email: victim.email });
    await writeDb(
      server,
      `insert into job_triggers (tenant_id, action, params_json, description, reference_id, concurrency_key, notify_hook, created_by, interval_seconds, next_run_at, enabled, created_at, updated_at)
       values (1, 'delete_user_data', '${params}', 'old', null, null, null, 1, 1, ${now}, 1, ${now}, ${now})`,
    );
    await waitForOutput(server, /started only through its own route; tick skipped/);
    expect(await jobsOf('delete_user_data')).toEqual([]);
    expect(await objectPaths()).toContain('victim/one.txt');
    await writeDb(server, `delete from job_triggers where action = 'delete_user_data'`);
  });

  it("offers no follow-up that would re-run an admin's workspace_sync or erasure without their route's checks", async () => {
    // The admin's own routes work: a forced workspace sync, and an erasure request (of the member, who has nothing in this package, at once).
    const performed = await admin.post('/api/sync/performSync', { app: 'policy', pushMode: 'force-pull' });
    expect(performed.body).toMatchObject({ code: 0 });
    const [wsJob] = await jobsOf('workspace_sync');
    const wsDone = await waitForJob(admin, wsJob!.id);
    expect(wsDone.status).toBe('succeeded');
    const erase = await adminKey.delete(`/public/${projectKey}/users/${memberId}?startAt=${Date.now()}`);
    expect(erase.status).toBe(200);
    const eraseDone = await waitForJob(admin, erase.body.data.jobId);
    expect(eraseDone.status).toBe('succeeded');
    // A pending erasure, cancelled: a retry would have run it without its delay.
    const pending = await adminKey.delete(`/public/${projectKey}/users/${victim.id}`);
    expect(pending.status).toBe(200);
    expect((await adminKey.delete(`/public/${projectKey}/jobs/${pending.body.data.jobId}`)).status).toBe(200);
    const cancelled = await waitForJob(admin, pending.body.data.jobId);
    expect(cancelled.status).toBe('cancelled');

    const countAll = async () => (await admin.get('/api/jobs?page_size=1')).body.meta.total as number;
    const before = await countAll();
    for (const job of [wsDone, eraseDone, cancelled]) {
      expect(job.buttons, job.job_type).toEqual([]);
      expect((await admin.get(`/mj/task/${job.id}/fetch`)).body.buttons, job.job_type).toEqual([]);
      for (const api of [member, memberKey, admin, adminKey]) {
        for (const button of ['rerun', 'retry']) {
          const res = await api.post('/mj/submit/action', {
            chooseSameChannel: true,
            customId: `yunji::${button}::${job.id}`,
            taskId: String(job.id),
          });
          expect(res.status, `${button} ${job.job_type}`).toBe(200);
          expect(res.body.code, `${button} ${job.job_type}: ${res.text}`).toBe(4);
          expect(res.body.result).toBeNull();
        }
      }
    }
    expect(await countAll()).toBe(before);
    expect(await objectPaths()).toContain('victim/one.txt');
  });

  it('re-checks a member-level follow-up: a rerun whose spaces have left the tenant is refused', async () => {
    const gone = await localSpace(admin, 'gone');
    const res = await member.post('/api/jobs', {
      action: 'space_sync',
      params: { srcUserSpaceID: spaceA.id, srcPath: 'ws-local', dests: [{ userSpaceID: gone.id, path: 'x' }], mode: { type: 'Full' } },
    });
    expect(res.status).toBe(201);
    const done = await waitForJob(admin, res.body.id);
    expect(done.buttons.map((b: { customId: string }) => b.customId)).toContain(`yunji::rerun::${done.id}`);
    const rerun = await member.post('/mj/submit/action', {
      chooseSameChannel: true,
      customId: `yunji::rerun::${done.id}`,
      taskId: String(done.id),
    });
    expect(rerun.body.code).toBe(1);
    await waitForJob(admin, Number(rerun.body.result));
    expect((await admin.post('/v1/userSpace/delete', { userSpaceID: gone.id })).body.code).toBe('OK');
    const refused = await member.post('/mj/submit/action', {
      chooseSameChannel: true,
      customId: `yunji::rerun::${done.id}`,
      taskId: String(done.id),
    });
    expect(refused.status).toBe(404);
    expect(refused.body).toMatchObject({ code: 404, result: null });
    // A viewer may not take follow-ups at all.
    const viewer = await viewerKey.post('/mj/submit/action', {
      chooseSameChannel: true,
      customId: `yunji::rerun::${done.id}`,
      taskId: String(done.id),
    });
    expect(viewer.status).toBe(403);
  });
});
