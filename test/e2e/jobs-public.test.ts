import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

/** Every shard file name under the default local space of tenant 1. */
function shards(dataDir: string): Set<string> {
  const root = join(dataDir, 'spaces', 'tenant-1', '.yunji', 'shards');
  const out = new Set<string>();
  for (const prefix of (() => {
    try {
      return readdirSync(root);
    } catch {
      return [];
    }
  })())
    for (const f of readdirSync(join(root, prefix))) out.add(f);
  return out;
}

/** The project surface (003-jobs-api) and user-data deletion. */
describe.each(kinds)('/public/{projectKey} jobs on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  let project: ReturnType<typeof client>;
  let projectKey: string;
  let member: { id: number; email: string; api: ReturnType<typeof client> };
  let stranger: { api: ReturnType<typeof client>; projectKey: string };

  beforeAll(async () => {
    // Deletions may remove bytes at once (no grace for fresh shards) so the test can see them go.
    server = await startServer(kind, { env: { YUNJI_SHARD_GRACE: '0', YUNJI_JOB_POLL: '100' } });
    admin = client(server.url, await login(server.url));
    const session = (await admin.get('/api/auth/session')).body;
    projectKey = session.current_tenant.project_key;
    const key = await admin.post('/api/keys', { name: 'project', role: 'admin' });
    expect(key.status).toBe(201);
    project = client(server.url, key.body.key);

    const invite = await admin.post('/api/users/invitations', { email: 'Leaver@Example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'leaver-pass' },
    });
    member = { id: accepted.body.user.id, email: 'leaver@example.com', api: client(server.url, accepted.body.token) };

    // Someone alone in another tenant, with their own project key.
    const invite2 = await admin.post('/api/users/invitations', { email: 'other@example.com', role: 'member' });
    const other = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite2.body.invitation_token, password: 'other-pass' },
    });
    const otherApi = client(server.url, other.body.token);
    const tenant = (await otherApi.post('/api/tenants', { name: 'Other' })).body;
    await admin.delete(`/api/users/${other.body.user.id}`);
    const relogged = client(server.url, await login(server.url, 'other@example.com', 'other-pass'));
    const otherKey = await relogged.post('/api/keys', { name: 'k', role: 'admin' });
    stranger = { api: client(server.url, otherKey.body.key), projectKey: tenant.project_key };
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const upload = async (token: string, packageID: number, files: [string, Buffer][]) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { data: { uploadeds: { objectID: number }[] } }).data.uploadeds;
  };

  it('schedules a user-data deletion after the configured delay, answers a repeat with the same job, and lists and cancels it', async () => {
    const before = Date.now();
    const res = await project.delete(`/public/${projectKey}/users/${member.id}`);
    expect(res.status).toBe(200);
    const job = res.body.data;
    // The job names the identifier as given (an id is not resolved to its email: that would reveal the account).
    expect(job).toEqual({
      jobId: expect.any(Number),
      description: `Delete user data of userId = ${member.id}`,
      status: 'scheduled',
      projectId: expect.any(Number),
      action: 'delete_user_data',
      referenceId: String(member.id),
      createdAt: expect.any(Number),
      updatedAt: null,
      startAt: expect.any(Number),
      errors: null,
    });
    // The default delay is a day.
    expect(job.startAt).toBeGreaterThanOrEqual(before + 86_400_000 - 5000);
    expect(job.createdAt).toBeGreaterThanOrEqual(before - 1000);

    const again = await project.delete(`/public/${projectKey}/users/${member.id}`);
    expect(again.status).toBe(200);
    expect(again.body.data.jobId).toBe(job.jobId);
    // An email is a request of its own, even for the same account (joining them would tell which email an id has).
    const byEmail = await project.delete(`/public/${projectKey}/users/${member.email.toUpperCase()}`);
    expect(byEmail.body.data).toMatchObject({ referenceId: member.email, description: `Delete user data of userId = ${member.email}` });
    expect(byEmail.body.data.jobId).not.toBe(job.jobId);
    expect((await project.delete(`/public/${projectKey}/jobs/${byEmail.body.data.jobId}`)).status).toBe(200);

    const got = await project.get(`/public/${projectKey}/jobs/${job.jobId}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ data: job });
    const listed = await project.get(`/public/${projectKey}/jobs?limit=50&page=1`);
    expect(listed.body.data[1]).toEqual(job);

    const cancelled = await project.delete(`/public/${projectKey}/jobs/${job.jobId}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.data).toMatchObject({ jobId: job.jobId, status: 'cancelled', updatedAt: expect.any(Number) });
    const twice = await project.delete(`/public/${projectKey}/jobs/${job.jobId}`);
    expect(twice.status).toBe(400);
    expect(twice.body.message).toMatch(/already cancelled/);
  });

  it('pages leniently as the spec says: out-of-range limit is 50, page below 1 is 1', async () => {
    for (let i = 0; i < 3; i++) expect((await admin.post('/api/jobs', { action: 'noop' })).status).toBe(201);
    const all = (await project.get(`/public/${projectKey}/jobs`)).body.data as { jobId: number }[];
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(all.map((j) => j.jobId)).toEqual([...all.map((j) => j.jobId)].sort((a, b) => b - a));
    for (const q of ['limit=0', 'limit=10000', 'limit=-3', 'limit=abc', 'limit=2.5', 'page=-5', 'page=0', 'page=abc']) {
      const res = await project.get(`/public/${projectKey}/jobs?${q}`);
      expect(res.status, q).toBe(200);
      expect(
        res.body.data.map((j: { jobId: number }) => j.jobId),
        q,
      ).toEqual(all.map((j) => j.jobId));
    }
    const second = await project.get(`/public/${projectKey}/jobs?limit=2&page=2`);
    expect(second.body.data.map((j: { jobId: number }) => j.jobId)).toEqual(all.slice(2, 4).map((j) => j.jobId));
    expect((await project.get(`/public/${projectKey}/jobs?limit=2&page=100000`)).body.data).toEqual([]);
  });

  it('answers bad ids with 400, absent and foreign jobs and projects with 404', async () => {
    for (const id of ['abc', '1.5', '-1', '0', '1e3', '%00', 'x'.repeat(40)]) {
      expect((await project.get(`/public/${projectKey}/jobs/${id}`)).status, id).toBe(400);
      expect((await project.delete(`/public/${projectKey}/jobs/${id}`)).status, id).toBe(400);
    }
    expect((await project.get(`/public/${projectKey}/jobs/99999999`)).status).toBe(404);
    expect((await project.get(`/public/${projectKey}/jobs/99999999999999999999`)).status).toBe(400);
    const mine = (await project.get(`/public/${projectKey}/jobs`)).body.data[0].jobId;
    // Another tenant's key: neither our project nor our jobs exist for it.
    expect((await stranger.api.get(`/public/${projectKey}/jobs`)).status).toBe(404);
    expect((await stranger.api.get(`/public/${stranger.projectKey}/jobs/${mine}`)).status).toBe(404);
    expect((await stranger.api.delete(`/public/${stranger.projectKey}/jobs/${mine}`)).status).toBe(404);
    // In its own project a request for our member is accepted like any other, and can only reach that project's objects.
    const theirs = await stranger.api.delete(`/public/${stranger.projectKey}/users/${member.id}`);
    expect(theirs.status).toBe(200);
    expect(theirs.body.data.projectId).not.toBe((await project.get(`/public/${projectKey}/jobs/${mine}`)).body.data.projectId);
    expect((await stranger.api.delete(`/public/${stranger.projectKey}/jobs/${theirs.body.data.jobId}`)).status).toBe(200);
    expect((await project.get(`/public/nope/jobs`)).status).toBe(404);
    expect((await call(server.url, 'GET', `/public/${projectKey}/jobs`)).status).toBe(401);
    // An identifier of no account is accepted as any other (test/security/erasure-request-oracle.test.ts); malformed ones are 400.
    const nobody = await project.delete(`/public/${projectKey}/users/99999`);
    expect(nobody.status).toBe(200);
    expect((await project.delete(`/public/${projectKey}/jobs/${nobody.body.data.jobId}`)).status).toBe(200);
    for (const bad of ['0', 'abc', 'x@']) expect((await project.delete(`/public/${projectKey}/users/${bad}`)).status, bad).toBe(400);
    expect((await project.delete(`/public/${projectKey}/users/${member.id}?startAt=1000`)).status).toBe(400);
    expect((await project.delete(`/public/${projectKey}/users/${member.id}?startAt=soon`)).status).toBe(400);
    // A member may not delete another user's data.
    expect((await member.api.delete(`/public/${projectKey}/users/1`)).status).toBe(403);
  });

  it("deletes the user's objects and their bytes, keeping bytes another object still uses", async () => {
    const memberToken = await login(server.url, member.email, 'leaver-pass');
    const adminToken = await login(server.url);
    const bucket = (await admin.post('/v1/bucket/create', { name: 'shared' })).body.data.bucket.bucketID;
    const packageID = (await admin.post('/v1/package/create', { bucketID: bucket, name: 'p' })).body.data.package.packageID;
    const only = randomBytes(5000);
    const common = randomBytes(6000);
    const mine = await upload(memberToken, packageID, [
      ['leaver/only.bin', only],
      ['leaver/common.bin', common],
    ]);
    // The admin keeps a clone of one of them: those bytes must stay.
    const clone = await admin.post('/v1/object/clone', {
      clonings: [{ objectID: mine[1]!.objectID, newPath: 'kept/common.bin', newPackageID: packageID }],
    });
    expect(clone.body.code).toBe('OK');
    const adminOwn = await upload(adminToken, packageID, [['admin.bin', randomBytes(100)]]);
    expect(shards(server.dataDir).has(sha(only))).toBe(true);

    // Bytes younger than 2 s (how far a stored file's time may lag the server's clock) stay for the
    // sweeper, as a write may have made them just now: the deletion runs once they are older.
    const res = await project.delete(`/public/${projectKey}/users/${member.email}?startAt=${Date.now() + 2500}`);
    expect(res.status).toBe(200);
    const done = await eventually(async () => {
      const j = (await project.get(`/public/${projectKey}/jobs/${res.body.data.jobId}`)).body.data;
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    }, 'the deletion to finish');
    expect(done.status).toBe('completed');

    const listed = (await admin.get(`/v1/object/listByPath?packageID=${packageID}&path=&isPrefix=true`)).body.data.objects.map(
      (o: { path: string }) => o.path,
    );
    expect(listed.sort()).toEqual(['admin.bin', 'kept/common.bin']);
    expect(shards(server.dataDir).has(sha(only))).toBe(false);
    expect(shards(server.dataDir).has(sha(common))).toBe(true);
    const detail = (await admin.get(`/api/jobs/${done.jobId}`)).body;
    expect(detail.result).toEqual({ objectsDeleted: 2, bytesFreed: 5000, shardsRemoved: 1, shardsKept: 1 });
    expect(adminOwn).toHaveLength(1);
  });
});
