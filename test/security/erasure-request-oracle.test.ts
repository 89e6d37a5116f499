import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, keyClient, login, newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import { until, type Api } from '../helpers/sync.ts';

/**
 * `DELETE /public/{projectKey}/users/{userId}` must not tell a key holder whether an account
 * exists, or ever was a member: every well-formed identifier is accepted and recorded as an
 * erasure job, answered and shown alike; the job deletes what that identity created in the tenant
 * (nothing where there is nothing) after the delay, and says what it did.
 */
const kinds = await databaseKinds();
const DELAY_SECONDS = 2;

/** A view with the identifier replaced by `<who>` and generated ids and times zeroed. */
function normalized(value: unknown, who: string): unknown {
  if (typeof value === 'string') return value.split(who).join('<who>');
  if (Array.isArray(value)) return value.map((v) => normalized(v, who));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, /^(id|jobId|line|at)$|At$|_at$|Time$/.test(k) && v !== null ? 0 : normalized(v, who)]),
    );
  }
  return value;
}

async function addMember(base: string, admin: Api, email: string): Promise<{ id: number; token: string }> {
  const invite = await admin.post('/api/users/invitations', { email, role: 'member' });
  if (invite.status !== 201) throw new Error(`invite failed: ${invite.status} ${invite.text}`);
  const accepted = await call(base, 'POST', '/api/auth/invitations/accept', {
    body: { token: invite.body.invitation_token, password: `${email}-pw` },
  });
  if (accepted.status !== 200) throw new Error(`accept failed: ${accepted.status} ${accepted.text}`);
  return { id: accepted.body.user.id, token: accepted.body.token };
}

describe.each(kinds)('erasure requests on %s', (kind) => {
  let server: RunningServer;
  let admin: Api;
  let project: Api;
  let projectKey: string;
  let packageID: number;
  let other: { key: Api; projectKey: string };
  /** The four kinds of identity, by email and by id. */
  let identities: { label: string; email: string; id: number }[];
  /** A member whose objects no request may touch. */
  let keeperId: number;

  const upload = async (token: string, name: string) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    form.append('files', new Blob([Buffer.from(`bytes of ${name}`)]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(res.status).toBe(200);
  };
  const paths = async () =>
    ((await admin.get(`/v1/object/listByPath?packageID=${packageID}&path=&isPrefix=true`)).body.data.objects as { path: string }[])
      .map((o) => o.path)
      .sort();
  const views = async (jobId: number) => ({
    public: (await project.get(`/public/${projectKey}/jobs/${jobId}`)).body,
    platform: (await admin.get(`/api/jobs/${jobId}`)).body,
    task: (await admin.get(`/mj/task/${jobId}/fetch`)).body,
    logs: (await admin.get(`/api/jobs/${jobId}/logs`)).body,
  });
  const finished = (jobId: number) =>
    until(`erasure job ${jobId} to finish`, async () => {
      const job = (await project.get(`/public/${projectKey}/jobs/${jobId}`)).body.data;
      return ['completed', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
    });

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_DELETE_DELAY: String(DELAY_SECONDS), YUNJI_JOB_POLL: '100', YUNJI_SHARD_GRACE: '0' } });
    admin = client(server.url, await login(server.url));
    projectKey = (await admin.get('/api/auth/session')).body.current_tenant.project_key;
    project = await keyClient(server.url, admin, 'admin');
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;

    const member = await addMember(server.url, admin, 'current@example.com');
    await upload(member.token, 'current/1.txt');
    await upload(member.token, 'current/2.txt');
    const former = await addMember(server.url, admin, 'former@example.com');
    await upload(former.token, 'former/1.txt');
    expect((await admin.delete(`/api/users/${former.id}`)).status).toBe(204);
    const keeper = await addMember(server.url, admin, 'keeper@example.com');
    await upload(keeper.token, 'keeper/1.txt');

    // Another tenant, where an account exists that never had anything in ours.
    const otherAdmin = await newTenantClient(server.url, 'Other');
    const outsider = await addMember(server.url, otherAdmin, 'outsider@example.com');
    other = {
      key: await keyClient(server.url, otherAdmin, 'admin'),
      projectKey: (await otherAdmin.get('/api/auth/session')).body.current_tenant.project_key,
    };

    identities = [
      { label: 'current member', email: 'current@example.com', id: member.id },
      { label: 'removed former member', email: 'former@example.com', id: former.id },
      { label: 'account never here', email: 'outsider@example.com', id: outsider.id },
      { label: 'no account', email: 'nobody@example.com', id: 987_654 },
    ];
    keeperId = keeper.id;
  });
  afterAll(async () => {
    if (server) expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
  });

  it('refuses malformed identifiers with 400 in the surface envelope, and non-admins with 403', async () => {
    for (const bad of [
      '0',
      '-1',
      '1.5',
      '007',
      '1e3',
      '99999999999999999999',
      'abc',
      'a b@example.com',
      '@example.com',
      'x@',
      'x@@y',
      '%00',
      '%20',
      'x%0A@example.com',
    ]) {
      const res = await project.delete(`/public/${projectKey}/users/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(res.body.code, bad).toBe('bad_request');
      expect(typeof res.body.message).toBe('string');
    }
    const member = await keyClient(server.url, admin, 'member');
    const refused = await member.delete(`/public/${projectKey}/users/nobody@example.com`);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('forbidden');
    expect((await project.get(`/public/${projectKey}/jobs`)).body.data).toEqual([]);
  });

  it('answers the four kinds of identity alike, by email and by id, and shows their jobs alike', async () => {
    expect(await paths()).toEqual(['current/1.txt', 'current/2.txt', 'former/1.txt', 'keeper/1.txt']);
    for (const form of ['email', 'id'] as const) {
      const answers: { label: string; who: string; body: unknown; jobId: number }[] = [];
      for (const identity of identities) {
        const who = String(identity[form]);
        const res = await project.delete(`/public/${projectKey}/users/${who}`);
        expect(res.status, `${identity.label} by ${form}: ${res.text}`).toBe(200);
        const job = res.body.data;
        expect(job).toMatchObject({
          status: 'scheduled',
          action: 'delete_user_data',
          referenceId: who,
          description: `Delete user data of userId = ${who}`,
        });
        // The deletion waits for the delay (counted from just before the job's creation), so it can be cancelled meanwhile.
        expect(job.startAt).toBeGreaterThan(job.createdAt + DELAY_SECONDS * 1000 - 1000);
        answers.push({ label: identity.label, who, body: normalized(res.body, who), jobId: job.jobId });
      }
      for (const a of answers.slice(1)) expect(a.body, `${a.label} by ${form}`).toEqual(answers[0]!.body);

      const done = new Map<string, Awaited<ReturnType<typeof views>>>();
      for (const a of answers) {
        const job = await finished(a.jobId);
        expect(job.status, a.label).toBe('completed');
        done.set(a.label, await views(a.jobId));
      }
      const deleted = (label: string) => done.get(label)!.platform.result.objectsDeleted as number;
      if (form === 'email') {
        expect(deleted('current member')).toBe(2);
        expect(deleted('removed former member')).toBe(1);
      } else {
        // Their objects went with the requests by email.
        expect(deleted('current member')).toBe(0);
        expect(deleted('removed former member')).toBe(0);
      }
      expect(deleted('account never here')).toBe(0);
      expect(deleted('no account')).toBe(0);
      // Everything shown is the same but what was done (counts, progress and the log line saying them) ...
      const shown = answers.map((a) => {
        const v = normalized(done.get(a.label), a.who) as any;
        for (const k of ['result', 'stats', 'progress']) delete v.platform[k];
        for (const k of ['result', 'stats', 'progress']) delete v.task.properties[k];
        delete v.logs;
        return v;
      });
      for (const v of shown.slice(1)) expect(v).toEqual(shown[0]);
      // ... and where nothing was deleted, that too, the log included.
      const nothing = answers.filter((a) => deleted(a.label) === 0).map((a) => normalized(done.get(a.label), a.who));
      expect(nothing.length).toBeGreaterThanOrEqual(2);
      for (const v of nothing.slice(1)) expect(v).toEqual(nothing[0]);
      expect((nothing[0] as any).platform.result).toEqual({ objectsDeleted: 0, bytesFreed: 0, shardsRemoved: 0, shardsKept: 0 });
      expect(await paths()).toEqual(['keeper/1.txt']);
    }
  });

  it('returns the pending request for the same identity, keeps cancellation, and treats an id and an email as two requests', async () => {
    const first = await project.delete(`/public/${projectKey}/users/Keeper@Example.COM`);
    expect(first.status).toBe(200);
    expect(first.body.data.referenceId).toBe('keeper@example.com');
    const again = await project.delete(`/public/${projectKey}/users/keeper@example.com`);
    expect(again.body.data.jobId).toBe(first.body.data.jobId);
    const byId = await project.delete(`/public/${projectKey}/users/${keeperId}`);
    expect(byId.body.data.jobId).not.toBe(first.body.data.jobId);
    expect((await project.delete(`/public/${projectKey}/users/${keeperId}`)).body.data.jobId).toBe(byId.body.data.jobId);
    // The same for an identifier of no account.
    const nobody = await project.delete(`/public/${projectKey}/users/ghost@example.com`);
    expect((await project.delete(`/public/${projectKey}/users/GHOST@example.com`)).body.data.jobId).toBe(nobody.body.data.jobId);

    for (const job of [first, byId, nobody]) {
      const cancelled = await project.delete(`/public/${projectKey}/jobs/${job.body.data.jobId}`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.data.status).toBe('cancelled');
    }
    // Cancelled in time: the keeper's objects stay, and a new request is a new job.
    const renewed = await project.delete(`/public/${projectKey}/users/keeper@example.com`);
    expect(renewed.body.data.jobId).not.toBe(first.body.data.jobId);
    expect((await project.delete(`/public/${projectKey}/jobs/${renewed.body.data.jobId}`)).status).toBe(200);
    expect(await paths()).toEqual(['keeper/1.txt']);
  });

  it("keeps requests inside the key's own tenant: another project is 404, and a request in one's own project deletes nothing of ours", async () => {
    for (const who of [String(keeperId), 'keeper@example.com', 'nobody@example.com']) {
      const res = await other.key.delete(`/public/${projectKey}/users/${who}`);
      expect(res.status, who).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    const theirs = await other.key.delete(`/public/${other.projectKey}/users/keeper@example.com?startAt=${Date.now()}`);
    expect(theirs.status).toBe(200);
    const done = await until("the other tenant's erasure to finish", async () => {
      const job = (await other.key.get(`/public/${other.projectKey}/jobs/${theirs.body.data.jobId}`)).body.data;
      return job.status === 'completed' || job.status === 'failed' ? job : undefined;
    });
    expect(done.status).toBe('completed');
    expect((await other.key.get(`/api/jobs/${done.jobId}`)).body.result).toMatchObject({ objectsDeleted: 0 });
    expect(await paths()).toEqual(['keeper/1.txt']);
    // Our project does not see their job.
    expect((await project.get(`/public/${projectKey}/jobs/${done.jobId}`)).status).toBe(404);
  });
});
