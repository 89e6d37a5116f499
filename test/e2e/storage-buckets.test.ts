import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, earlyResponse, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/** Spec 004 §1–2 (buckets, packages) over HTTP: envelope, examples, errors, isolation. */
describe.each(kinds)('/v1 buckets and packages on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  let adminId: number;
  let other: ReturnType<typeof client>;
  let viewer: ReturnType<typeof client>;

  beforeAll(async () => {
    server = await startServer(kind);
    const token = await login(server.url);
    admin = client(server.url, token);
    adminId = (await admin.get('/api/auth/session')).body.user.id;
    // A viewer in the admin's tenant, and a stranger alone in another tenant.
    const invite = await admin.post('/api/users/invitations', { email: 'viewer@example.com', role: 'viewer' });
    viewer = client(
      server.url,
      (
        await call(server.url, 'POST', '/api/auth/invitations/accept', {
          body: { token: invite.body.invitation_token, password: 'viewer-pass' },
        })
      ).body.token,
    );
    const invite2 = await admin.post('/api/users/invitations', { email: 'stranger@example.com', role: 'member' });
    const strangerSession = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite2.body.invitation_token, password: 'stranger-pass' },
    });
    other = client(server.url, strangerSession.body.token);
    const own = (await other.post('/api/tenants', { name: 'Elsewhere' })).body;
    await admin.delete(`/api/users/${strangerSession.body.user.id}`);
    other = client(server.url, await login(server.url, 'stranger@example.com', 'stranger-pass'));
    expect((await other.get('/api/auth/session')).body.current_tenant.id).toBe(own.id);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('replays the spec: create, get, list and delete buckets and packages', async () => {
    const created = await admin.post('/v1/bucket/create', { userID: adminId, name: 'bkt1' });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({ code: 'OK', message: '', data: { bucket: { bucketID: expect.any(Number), name: 'bkt1' } } });
    const bucketID = created.body.data.bucket.bucketID as number;

    expect((await admin.get('/v1/bucket/getByName?name=bkt1')).body.data).toEqual({ bucket: { bucketID, name: 'bkt1' } });
    expect((await admin.get('/v1/bucket/listAll')).body.data.buckets).toEqual([{ bucketID, name: 'bkt1' }]);

    const pkg = await admin.post('/v1/package/create', { bucketID, name: 't1' });
    expect(pkg.status).toBe(200);
    expect(pkg.body.code).toBe('OK');
    expect(pkg.body.data.package).toEqual({
      packageID: expect.any(Number),
      name: 't1',
      bucketID,
      createTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    const packageID = pkg.body.data.package.packageID as number;
    expect((await admin.get('/v1/package/getByFullName?bucketName=bkt1&packageName=t1')).body.data.package.packageID).toBe(packageID);
    await admin.post('/v1/package/create', { bucketID, name: 't0' });
    expect((await admin.get(`/v1/package/listBucketPackages?bucketID=${bucketID}`)).body.data.packages.map((p: any) => p.name)).toEqual([
      't0',
      't1',
    ]);

    const deleted = await admin.post('/v1/package/delete', { packageID });
    expect(deleted.body).toEqual({ code: 'OK', message: '', data: null });
    expect((await admin.get('/v1/package/getByFullName?bucketName=bkt1&packageName=t1')).status).toBe(404);

    // Deleting a bucket deletes what it holds.
    expect((await admin.post('/v1/bucket/delete', { bucketID })).body.code).toBe('OK');
    const gone = await admin.get('/v1/package/getByFullName?bucketName=bkt1&packageName=t0');
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ code: 'NotFound', message: "package 'bkt1/t0' not found", data: null });
    expect((await admin.get('/v1/bucket/listAll')).body.data.buckets).toEqual([]);
  });

  it('answers mistakes in the storage envelope with the matching status', async () => {
    const b = (await admin.post('/v1/bucket/create', { name: 'dup' })).body.data.bucket;
    const cases: [Promise<any>, number, string][] = [
      [admin.post('/v1/bucket/create', { name: 'dup' }), 409, 'Conflict'],
      [
        admin
          .post('/v1/package/create', { bucketID: b.bucketID, name: 'p' })
          .then(() => admin.post('/v1/package/create', { bucketID: b.bucketID, name: 'p' })),
        409,
        'Conflict',
      ],
      [admin.post('/v1/bucket/create', { userID: adminId + 1000, name: 'x' }), 403, 'Forbidden'],
      [viewer.post('/v1/bucket/create', { name: 'x' }), 403, 'Forbidden'],
      [viewer.post('/v1/bucket/delete', { bucketID: b.bucketID }), 403, 'Forbidden'],
      [call(server.url, 'GET', '/v1/bucket/listAll'), 401, 'Unauthorized'],
      [call(server.url, 'GET', '/v1/bucket/listAll', { token: 'ys_garbage' }), 401, 'Unauthorized'],
      [admin.get('/v1/nope'), 404, 'NotFound'],
      [admin.get('/v1/bucket/create'), 405, 'MethodNotAllowed'],
      [admin.post('/v1/bucket/delete', { bucketID: 999999 }), 404, 'NotFound'],
      [admin.get('/v1/bucket/getByName?name=missing'), 404, 'NotFound'],
      [admin.get('/v1/package/listBucketPackages?bucketID=999999'), 404, 'NotFound'],
      [admin.post('/v1/package/create', { bucketID: 999999, name: 'p' }), 404, 'NotFound'],
      [admin.post('/v1/bucket/create', { name: 'x', extra: true }), 400, 'BadArgument'],
      [admin.post('/v1/bucket/create', {}), 400, 'BadArgument'],
      [admin.post('/v1/bucket/create', { name: 5 }), 400, 'BadArgument'],
      [admin.get('/v1/bucket/getByName'), 400, 'BadArgument'],
      [admin.get('/v1/package/listBucketPackages?bucketID=abc'), 400, 'BadArgument'],
      [admin.get('/v1/package/listBucketPackages?bucketID=-1'), 400, 'BadArgument'],
      [admin.post('/v1/bucket/delete', { bucketID: '1' }), 400, 'BadArgument'],
      [admin.post('/v1/bucket/delete', { bucketID: 1.5 }), 400, 'BadArgument'],
      [
        call(server.url, 'POST', '/v1/bucket/create', {
          token: undefined,
          raw: '{"name":',
          headers: { 'content-type': 'application/json' },
        }),
        401,
        'Unauthorized',
      ],
    ];
    for (const name of ['', 'a/b', '..', '.', 'back\\slash', 'nul\u0000', 'tab\there', 'x'.repeat(256)]) {
      cases.push([admin.post('/v1/bucket/create', { name }), 400, 'BadArgument']);
    }
    for (const [promise, status, code] of cases) {
      const res = await promise;
      expect([res.status, res.body?.code], res.text).toEqual([status, code]);
      expect(res.body.data).toBeNull();
      expect(res.body.message.length).toBeGreaterThan(0);
    }
    const malformed = await admin.post('/v1/bucket/create', undefined, {
      raw: '{"name":',
      headers: { 'content-type': 'application/json' },
    });
    expect([malformed.status, malformed.body.code]).toEqual([400, 'BadArgument']);
    const huge = await earlyResponse(
      server.url,
      'POST',
      '/v1/bucket/create',
      10 * 1024 * 1024,
      (await admin.get('/api/auth/session')).body.token,
    );
    expect([huge.status, JSON.parse(huge.text).code]).toEqual([413, 'TooLarge']);
    // Unicode names are fine, and a name is the same name whatever else surrounds it.
    expect((await admin.post('/v1/bucket/create', { name: '数据 🚀' })).body.data.bucket.name).toBe('数据 🚀');
    expect((await admin.get(`/v1/bucket/getByName?name=${encodeURIComponent('数据 🚀')}`)).status).toBe(200);
  });

  it("keeps tenants apart: another tenant's buckets and packages do not exist for you", async () => {
    const mine = (await admin.post('/v1/bucket/create', { name: 'shared-name' })).body.data.bucket;
    const myPkg = (await admin.post('/v1/package/create', { bucketID: mine.bucketID, name: 'p' })).body.data.package;
    // The same name is free in another tenant.
    const theirs = await other.post('/v1/bucket/create', { name: 'shared-name' });
    expect(theirs.status).toBe(200);
    for (const res of [
      await other.post('/v1/bucket/delete', { bucketID: mine.bucketID }),
      await other.post('/v1/package/create', { bucketID: mine.bucketID, name: 'intruder' }),
      await other.post('/v1/package/delete', { packageID: myPkg.packageID }),
      await other.get(`/v1/package/listBucketPackages?bucketID=${mine.bucketID}`),
    ]) {
      expect([res.status, res.body.code]).toEqual([404, 'NotFound']);
    }
    expect((await other.get('/v1/bucket/getByName?name=shared-name')).body.data.bucket.bucketID).toBe(theirs.body.data.bucket.bucketID);
    expect((await other.get('/v1/package/getByFullName?bucketName=shared-name&packageName=p')).status).toBe(404);
    expect((await other.get('/v1/bucket/listAll')).body.data.buckets.map((x: any) => x.name)).toEqual(['shared-name']);
    // Nothing of the admin's changed.
    expect((await admin.get('/v1/package/getByFullName?bucketName=shared-name&packageName=p')).body.data.package).toEqual(myPkg);
  });
});
