import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { type ApiResponse, call, type CallOptions, login, nativeOffRun, type RunningServer, startServer } from '../helpers/server.ts';
import { s3Client, s3Put, sha256, TERMINAL_STATUSES, until, writeTree } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/** Secrets given to sources: no answer may ever hold them. */
const S3_SECRET = 'sEcReT-s3-key-never-shown-4711';
const HEADER_TOKEN = 'manifest-token-never-shown-0815';
const MASK = '********';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const S3_BUCKET = 'sync-src';

type Stats = { checked: number; copied: number; updated: number; deleted: number; skipped: number; failed: number; bytes: number };
const stats = (s: Partial<Stats>): Stats => ({ checked: 0, copied: 0, updated: 0, deleted: 0, skipped: 0, failed: 0, bytes: 0, ...s });
const upperSha = (b: Buffer) => sha256(b).toUpperCase();

/** What the test's web server answers for one path. */
interface Route {
  status?: number;
  body?: Buffer | string;
  contentType?: string;
  /** Answer only after this long. */
  delayMs?: number;
  /** Accept the request and never answer. */
  hang?: boolean;
  /** Answer only once this settles. */
  gate?: Promise<unknown>;
}

/**
 * External data sources and source sync jobs (docs/SYNC.md "External data sources and source sync
 * jobs"; the spec's POST /api/sync/jobs) against the real server, with manifests and files served by
 * a local HTTP server, a `local` directory inside YUNJI_LOCAL_ROOTS and an s3rver bucket.
 */
describe.each(kinds)('/api/sync sources and jobs on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let s3c: S3Client;
  let roots: string;
  let outside: string;
  let web: Server;
  let webUrl: string;
  const webSockets = new Set<Socket>();
  const routes = new Map<string, Route>();
  const hits: { path: string; authorization: string | undefined }[] = [];
  /** Every response body the server gave this test. */
  const seen: string[] = [];

  let adminToken: string;
  let admin: Api;
  let viewer: Api;
  let member: Api;
  let other: Api;
  let otherBucketID: number;
  let bucketID: number;

  // ---- a client that records every answer ----
  const api = (token?: string) => {
    const c = async (method: string, path: string, opts: CallOptions = {}): Promise<ApiResponse> => {
      const res = await call(server.url, method, path, { ...(token ? { token } : {}), ...opts });
      seen.push(res.text);
      return res;
    };
    return {
      get: (path: string, opts?: CallOptions) => c('GET', path, opts),
      post: (path: string, body?: unknown, opts?: CallOptions) => c('POST', path, { body, ...opts }),
      put: (path: string, body?: unknown, opts?: CallOptions) => c('PUT', path, { body, ...opts }),
      patch: (path: string, body?: unknown, opts?: CallOptions) => c('PATCH', path, { body, ...opts }),
      delete: (path: string, opts?: CallOptions) => c('DELETE', path, opts),
    };
  };
  type Api = ReturnType<typeof api>;

  /** A platform ErrorResponse with this status and code. */
  const expectError = (res: ApiResponse, status: number, code: string, what: string) => {
    expect([res.status, res.body?.code], `${what}: ${res.text}`).toEqual([status, code]);
    expect(res.body.message, what).toEqual(expect.any(String));
  };

  // ---- the web server manifests and files come from ----
  let siteCount = 0;
  /** A fresh folder of the web server: paths under it, and their absolute URLs. */
  const site = () => {
    const base = `/site-${++siteCount}`;
    return {
      base,
      url: (p: string) => `${webUrl}${base}/${p}`,
      serve: (p: string, route: Route) => routes.set(`${base}/${p}`, route),
      serveJson: (p: string, value: unknown, extra: Route = {}) =>
        routes.set(`${base}/${p}`, { body: JSON.stringify(value), contentType: 'application/json', ...extra }),
      fetches: (p: string) => hits.filter((h) => h.path === `${base}/${p}`).length,
      hitsOf: (p: string) => hits.filter((h) => h.path === `${base}/${p}`),
    };
  };

  // ---- packages and their objects ----
  const newPackage = async (name: string, as: Api = admin, bucket = bucketID) => {
    const res = await as.post('/v1/package/create', { bucketID: bucket, name });
    expect(res.body?.code, res.text).toBe('OK');
    return res.body.data.package.packageID as number;
  };
  const objectsOf = async (packageID: number, as: Api = admin): Promise<Record<string, any>> => {
    const res = await as.get(`/v1/object/listByPath?packageID=${packageID}&isPrefix=true`);
    expect(res.body?.code, res.text).toBe('OK');
    return Object.fromEntries((res.body.data.objects as any[]).map((o) => [o.path, o]));
  };
  const download = async (objectID: number, token = adminToken) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };
  /** Every object of a package: path → bytes. */
  const contentsOf = async (packageID: number, as: Api = admin, token = adminToken): Promise<Record<string, Buffer>> => {
    const out: Record<string, Buffer> = {};
    for (const [path, o] of Object.entries(await objectsOf(packageID, as))) out[path] = await download(o.objectID, token);
    return out;
  };

  // ---- sources and sync jobs ----
  const createSource = async (body: Record<string, unknown>, as: Api = admin) => {
    const res = await as.post('/api/sync/sources', body);
    expect(res.status, res.text).toBe(201);
    return res.body;
  };
  let sourceCount = 0;
  /** An http_manifest source filling a new package. */
  const manifestSource = async (url: string, extra: Record<string, unknown> = {}, as: Api = admin, bucket = bucketID) => {
    const name = `manifest-${++sourceCount}`;
    const packageID = await newPackage(`pkg-${name}`, as, bucket);
    return createSource({ name, type: 'http_manifest', config: { url }, package_id: packageID, ...extra }, as) as Promise<{
      id: number;
      name: string;
      package_id: number;
    }>;
  };
  const startSync = async (source: string, as: Api = admin) => {
    const res = await as.post('/api/sync/jobs', { source });
    expect(res.status, res.text).toBe(200);
    return res.body;
  };
  const waitSync = async (id: number, as: Api = admin, timeoutMs = 30_000) => {
    let last: unknown;
    return until(
      `sync job ${id} to end`,
      async () => {
        const res = await as.get(`/api/sync/jobs/${id}`);
        expect(res.status, res.text).toBe(200);
        last = res.body;
        return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
      },
      timeoutMs,
      () => JSON.stringify(last),
    );
  };
  /** Runs a sync of `source` to its end; the finished job. */
  const sync = async (source: string, as: Api = admin) => waitSync((await startSync(source, as)).id, as);

  /** A new tenant owned by the admin, reached through a new session switched into it, with a bucket. */
  let tenantCount = 0;
  const newTenant = async () => {
    const as = api(await login(server.url));
    const tenant = await as.post('/api/tenants', { name: `Sync tenant ${++tenantCount}` });
    expect(tenant.status, tenant.text).toBe(201);
    const switched = await as.put('/api/auth/tenant', { tenant_id: tenant.body.id });
    expect(switched.status, switched.text).toBe(200);
    const bucket = await as.post('/v1/bucket/create', { name: `bucket-${tenantCount}` });
    expect(bucket.body?.code, bucket.text).toBe('OK');
    return { as, tenantId: tenant.body.id as number, bucketID: bucket.body.data.bucket.bucketID as number };
  };

  beforeAll(async () => {
    web = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      hits.push({ path, authorization: req.headers.authorization });
      const route = routes.get(path);
      if (!route) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no such file');
      if (route.hang) return;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(route.status ?? 200, { 'content-type': route.contentType ?? 'application/octet-stream' });
        res.end(route.body ?? '');
      };
      if (route.delayMs) setTimeout(send, route.delayMs);
      else if (route.gate) void route.gate.then(send);
      else send();
    });
    web.on('connection', (s) => {
      webSockets.add(s);
      s.on('close', () => webSockets.delete(s));
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;

    s3 = await startS3([S3_BUCKET]);
    s3c = s3Client(s3.endpoint);
    roots = mkdtempSync(join(tmpdir(), 'yunji-sync-roots-'));
    outside = mkdtempSync(join(tmpdir(), 'yunji-sync-outside-'));
    server = await startServer(kind, {
      env: {
        YUNJI_OUTBOUND_ALLOW: '127.0.0.1',
        YUNJI_LOCAL_ROOTS: roots,
        YUNJI_SOURCE_TIMEOUT: '2',
        YUNJI_JOB_POLL: '100',
        YUNJI_SHARD_GRACE: '0',
      },
    });
    adminToken = await login(server.url);
    admin = api(adminToken);
    const bucket = await admin.post('/v1/bucket/create', { name: 'sync' });
    expect(bucket.body?.code, bucket.text).toBe('OK');
    bucketID = bucket.body.data.bucket.bucketID;

    // A viewer (an invited user) and a member (an API key) of the admin's tenant.
    const invite = await admin.post('/api/users/invitations', { email: 'viewer@example.com', role: 'viewer' });
    expect(invite.status, invite.text).toBe(201);
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'viewer-password' },
    });
    expect(accepted.status, accepted.text).toBe(200);
    viewer = api(accepted.body.token);
    const key = await admin.post('/api/keys', { name: 'member key', role: 'member' });
    expect(key.status, key.text).toBe(201);
    member = api(key.body.key);

    const second = await newTenant();
    other = second.as;
    otherBucketID = second.bucketID;
  });
  afterAll(async () => {
    await server?.dispose();
    await s3?.stop();
    for (const s of webSockets) s.destroy();
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
    if (roots) rmSync(roots, { recursive: true, force: true });
    if (outside) rmSync(outside, { recursive: true, force: true });
  });

  // ---- 1. sources CRUD ----

  it('creates local, s3 and http_manifest sources, answering the ExternalDataSource shape with secrets masked', async () => {
    const dir = join(roots, 'crud-local');
    mkdirSync(dir, { recursive: true });
    const localPkg = await newPackage('crud-local');
    const local = await admin.post('/api/sync/sources', { name: 'crud-local', type: 'local', config: { path: dir }, package_id: localPkg });
    expect(local.status, local.text).toBe(201);
    expect(local.body).toEqual({
      id: expect.any(Number),
      name: 'crud-local',
      type: 'local',
      config: { path: realpathSync(dir) },
      package_id: localPkg,
      mirror: false,
      is_default: false,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });

    await s3Put(s3c, S3_BUCKET, 'crud/one.txt', Buffer.from('one'));
    await s3Put(s3c, S3_BUCKET, 'crud/two/three.txt', Buffer.from('three'));
    const s3Pkg = await newPackage('crud-s3');
    const s3Config = {
      endpoint: s3.endpoint,
      region: 'us-east-1',
      bucket: S3_BUCKET,
      prefix: 'crud',
      force_path_style: true,
      access_key_id: S3_CREDENTIAL.accessKeyId,
      secret_access_key: S3_SECRET,
    };
    const s3Source = await admin.post('/api/sync/sources', {
      name: 'crud-s3',
      type: 's3',
      config: s3Config,
      package_id: s3Pkg,
      mirror: true,
    });
    expect(s3Source.status, s3Source.text).toBe(201);
    expect(s3Source.body).toEqual({
      id: expect.any(Number),
      name: 'crud-s3',
      type: 's3',
      config: { ...s3Config, secret_access_key: MASK },
      package_id: s3Pkg,
      mirror: true,
      is_default: false,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });

    const manifestPkg = await newPackage('crud-manifest');
    const url = `${webUrl}/crud/manifest.json`;
    const manifest = await admin.post('/api/sync/sources', {
      name: 'crud-manifest',
      type: 'http_manifest',
      config: { url, headers: { Authorization: `Bearer ${HEADER_TOKEN}`, 'X-Api-Key': HEADER_TOKEN } },
      package_id: manifestPkg,
    });
    expect(manifest.status, manifest.text).toBe(201);
    expect(manifest.body).toEqual({
      id: expect.any(Number),
      name: 'crud-manifest',
      type: 'http_manifest',
      config: { url, headers: { Authorization: MASK, 'X-Api-Key': MASK } },
      package_id: manifestPkg,
      mirror: false,
      is_default: false,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });

    // GET and the list answer the same masked shapes, to a viewer as well.
    for (const created of [local.body, s3Source.body, manifest.body]) {
      const got = await admin.get(`/api/sync/sources/${created.id}`);
      expect(got.status, got.text).toBe(200);
      expect(got.body).toEqual(created);
      expect((await viewer.get(`/api/sync/sources/${created.id}`)).body).toEqual(created);
    }
    const listed = await viewer.get('/api/sync/sources?page_size=200');
    expect(listed.status, listed.text).toBe(200);
    for (const created of [local.body, s3Source.body, manifest.body]) expect(listed.body.items).toContainEqual(created);
  });

  it('refuses duplicate names (409), foreign or missing packages (404), bad configs (400), and non-admins (403/401)', async () => {
    const pkg = await newPackage('refusals');
    const dir = join(roots, 'refusals');
    mkdirSync(dir, { recursive: true });
    await createSource({ name: 'taken', type: 'local', config: { path: dir }, package_id: pkg });
    expectError(
      await admin.post('/api/sync/sources', { name: 'taken', type: 'http_manifest', config: { url: `${webUrl}/x.json` }, package_id: pkg }),
      409,
      'conflict',
      'same name',
    );
    // Unique per tenant only: the other tenant may use the name.
    const otherPkg = await newPackage('theirs', other, otherBucketID);
    const theirs = await other.post('/api/sync/sources', {
      name: 'taken',
      type: 'http_manifest',
      config: { url: `${webUrl}/x.json` },
      package_id: otherPkg,
    });
    expect(theirs.status, theirs.text).toBe(201);

    expectError(
      await admin.post('/api/sync/sources', { name: 'foreign-pkg', type: 'local', config: { path: dir }, package_id: otherPkg }),
      404,
      'not_found',
      "another tenant's package",
    );
    expectError(
      await admin.post('/api/sync/sources', { name: 'missing-pkg', type: 'local', config: { path: dir }, package_id: 99_999_999 }),
      404,
      'not_found',
      'no such package',
    );

    // Another tenant's local space may not be read through a source.
    const foreign = join(roots, 'foreign-space');
    mkdirSync(join(foreign, 'sub'), { recursive: true });
    const space = await other.post('/v1/userSpace/create', { name: 'foreign', storage: { type: 'local', root: foreign } });
    expect(space.body?.code, space.text).toBe('OK');

    const bad: [Record<string, unknown>, string][] = [
      [{ type: 'local', config: { path: outside } }, 'local path outside YUNJI_LOCAL_ROOTS'],
      [{ type: 'local', config: { path: 'relative/dir' } }, 'relative local path'],
      [{ type: 'local', config: { path: `${roots}/../${outside.split('/').pop()}` } }, 'dot-dot out of the roots'],
      [{ type: 'local', config: { path: foreign } }, "another tenant's space"],
      [{ type: 'local', config: { path: join(foreign, 'sub') } }, "inside another tenant's space"],
      [{ type: 'local', config: { path: dir, extra: 1 } }, 'unknown config field'],
      [{ type: 'local', config: {} }, 'no path'],
      [{ type: 'http_manifest', config: { url: 'ftp://127.0.0.1/manifest.json' } }, 'ftp url'],
      [{ type: 'http_manifest', config: { url: 'not a url' } }, 'not a url'],
      [{ type: 's3', config: { bucket: S3_BUCKET, access_key_id: 'a' } }, 's3 without secret'],
      [{ type: 's3', config: { bucket: 'x', access_key_id: 'a', secret_access_key: 'b' } }, 'bucket too short'],
      [
        { type: 's3', config: { endpoint: 'ftp://x', bucket: S3_BUCKET, access_key_id: 'a', secret_access_key: 'b' } },
        's3 endpoint not http',
      ],
      [{ type: 's3', config: { bucket: S3_BUCKET, prefix: '../up', access_key_id: 'a', secret_access_key: 'b' } }, 's3 prefix escapes'],
      [{ type: 'ftp', config: { url: 'ftp://x' } }, 'unknown type'],
      [{ type: 'local', config: { path: dir }, surprise: true }, 'unknown field'],
    ];
    let n = 0;
    for (const [body, what] of bad)
      expectError(await admin.post('/api/sync/sources', { name: `bad-${++n}`, package_id: pkg, ...body }), 400, 'bad_request', what);
    expectError(
      await admin.post('/api/sync/sources', { name: '', type: 'local', config: { path: dir }, package_id: pkg }),
      400,
      'bad_request',
      'empty name',
    );

    const body = { name: 'by-non-admin', type: 'local', config: { path: dir }, package_id: pkg };
    expectError(await viewer.post('/api/sync/sources', body), 403, 'forbidden', 'viewer creates');
    expectError(await member.post('/api/sync/sources', body), 403, 'forbidden', 'member creates');
    expectError(await api().post('/api/sync/sources', body), 401, 'unauthorized', 'no credentials');
    expectError(await api().get('/api/sync/sources'), 401, 'unauthorized', 'no credentials list');
    const names = ((await admin.get('/api/sync/sources?page_size=200')).body.items as any[]).map((s) => s.name);
    expect(names).toContain('taken');
    expect(names.filter((x) => x.startsWith('bad-') || x === 'by-non-admin' || x === 'foreign-pkg' || x === 'missing-pkg')).toEqual([]);
  });

  it('refuses manifest header names that are not HTTP header names (400)', async () => {
    const pkg = await newPackage('bad-headers');
    for (const name of ['Bad Header', 'X:Y', 'X\u00e9']) {
      expectError(
        await admin.post('/api/sync/sources', {
          name: `bad-header-${name}`,
          type: 'http_manifest',
          config: { url: `${webUrl}/m.json`, headers: { [name]: 'x' } },
          package_id: pkg,
        }),
        400,
        'bad_request',
        `header name ${JSON.stringify(name)}`,
      );
    }
  });

  it('moves is_default to the newest source marked, patches fields, deletes (204 then 404), and pages the list', async () => {
    const t = await newTenant();
    const pkg = await newPackage('p1', t.as, t.bucketID);
    const pkg2 = await newPackage('p2', t.as, t.bucketID);
    const a = await createSource(
      { name: 'a', type: 'http_manifest', config: { url: `${webUrl}/a.json` }, package_id: pkg, is_default: true },
      t.as,
    );
    expect(a.is_default).toBe(true);
    const b = await createSource(
      { name: 'b', type: 'http_manifest', config: { url: `${webUrl}/b.json` }, package_id: pkg, is_default: true },
      t.as,
    );
    const c = await createSource({ name: 'c', type: 'http_manifest', config: { url: `${webUrl}/c.json` }, package_id: pkg }, t.as);
    const defaults = async () => ((await t.as.get('/api/sync/sources')).body.items as any[]).filter((s) => s.is_default).map((s) => s.name);
    expect(b.is_default).toBe(true);
    expect(c.is_default).toBe(false);
    expect((await t.as.get(`/api/sync/sources/${a.id}`)).body.is_default).toBe(false);
    expect(await defaults()).toEqual(['b']);

    // Paging: ordered by id, with the platform's meta.
    const page1 = await t.as.get('/api/sync/sources?page=1&page_size=2');
    expect(page1.status, page1.text).toBe(200);
    expect(page1.body.items.map((s: any) => s.name)).toEqual(['a', 'b']);
    expect(page1.body.meta).toEqual({ page: 1, page_size: 2, total: 3, total_pages: 2 });
    const page2 = await t.as.get('/api/sync/sources?page=2&page_size=2');
    expect(page2.body.items.map((s: any) => s.name)).toEqual(['c']);
    expect(page2.body.meta).toEqual({ page: 2, page_size: 2, total: 3, total_pages: 2 });
    expect((await t.as.get('/api/sync/sources?page=3&page_size=2')).body).toEqual({
      items: [],
      meta: { page: 3, page_size: 2, total: 3, total_pages: 2 },
    });
    expectError(await t.as.get('/api/sync/sources?page_size=0'), 400, 'bad_request', 'page_size 0');
    expectError(await t.as.get('/api/sync/sources?page=abc'), 400, 'bad_request', 'page not a number');
    // Another tenant sees none of these.
    expect((await other.get('/api/sync/sources?page_size=200')).body.items.map((s: any) => s.id)).not.toContain(a.id);

    // PATCH: name, mirror, package, config (headers sealed and masked), default.
    const patched = await t.as.patch(`/api/sync/sources/${a.id}`, {
      name: 'a2',
      mirror: true,
      package_id: pkg2,
      config: { url: `${webUrl}/a2.json`, headers: { Authorization: `Bearer ${HEADER_TOKEN}` } },
      is_default: true,
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toEqual({
      ...a,
      name: 'a2',
      mirror: true,
      package_id: pkg2,
      config: { url: `${webUrl}/a2.json`, headers: { Authorization: MASK } },
      is_default: true,
      updated_at: expect.stringMatching(ISO),
    });
    expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(a.updated_at));
    expect(await defaults()).toEqual(['a2']);
    expect((await t.as.get(`/api/sync/sources/${a.id}`)).body).toEqual(patched.body);
    // A config without headers drops them.
    const noHeaders = await t.as.patch(`/api/sync/sources/${a.id}`, { config: { url: `${webUrl}/a3.json` } });
    expect(noHeaders.body.config).toEqual({ url: `${webUrl}/a3.json` });
    const unmarked = await t.as.patch(`/api/sync/sources/${a.id}`, { is_default: false });
    expect(unmarked.body.is_default).toBe(false);
    expect(await defaults()).toEqual([]);

    expectError(await t.as.patch(`/api/sync/sources/${a.id}`, { type: 'local' }), 400, 'bad_request', 'type cannot change');
    expectError(await t.as.patch(`/api/sync/sources/${a.id}`, { name: 'b' }), 409, 'conflict', 'rename onto a taken name');
    expectError(await t.as.patch(`/api/sync/sources/${a.id}`, { config: { url: 'ftp://x/y' } }), 400, 'bad_request', 'ftp url');
    expectError(await t.as.patch(`/api/sync/sources/${a.id}`, { package_id: 99_999_999 }), 404, 'not_found', 'no such package');
    expectError(
      await t.as.patch(`/api/sync/sources/${a.id}`, { package_id: await newPackage('foreign-for-patch', other, otherBucketID) }),
      404,
      'not_found',
      "another tenant's package",
    );
    expectError(await other.patch(`/api/sync/sources/${a.id}`, { name: 'stolen' }), 404, 'not_found', "another tenant's source");
    expectError(await other.get(`/api/sync/sources/${a.id}`), 404, 'not_found', "another tenant's source");
    expectError(await other.delete(`/api/sync/sources/${a.id}`), 404, 'not_found', "another tenant's source");
    expectError(await t.as.get('/api/sync/sources/abc'), 400, 'bad_request', 'non-integer id');
    expectError(await t.as.get('/api/sync/sources/99999999'), 404, 'not_found', 'no such source');

    // DELETE: 204, then 404; the package stays.
    const deleted = await t.as.delete(`/api/sync/sources/${c.id}`);
    expect([deleted.status, deleted.text]).toEqual([204, '']);
    expectError(await t.as.get(`/api/sync/sources/${c.id}`), 404, 'not_found', 'deleted source');
    expectError(await t.as.delete(`/api/sync/sources/${c.id}`), 404, 'not_found', 'deleted twice');
    expectError(await t.as.patch(`/api/sync/sources/${c.id}`, { name: 'x' }), 404, 'not_found', 'patch deleted');
    expect((await t.as.get(`/v1/object/listByPath?packageID=${pkg}&isPrefix=true`)).body.code).toBe('OK');
    expect((await t.as.get('/api/sync/sources')).body.meta.total).toBe(2);
  });

  // ---- 2. POST /api/sync/jobs ----

  it("starts a sync from the spec's example body, refuses a second while one runs (409), and checks roles", async () => {
    const s = site();
    const content = Buffer.from('slow but sure');
    s.serve('f.txt', { body: content });
    // The manifest answers after 1.5 s, so the first sync is still pending or running when asked again.
    s.serveJson('manifest.json', [{ path: 'f.txt', url: 'f.txt', sha256: sha256(content) }], { delayMs: 1500 });
    const src = await manifestSource(s.url('manifest.json'));

    const res = await admin.post('/api/sync/jobs', { source: src.name });
    expect(res.status, res.text).toBe(200);
    const job = res.body;
    expect(job).toMatchObject({
      id: expect.any(Number),
      job_type: 'source_sync',
      trigger_type: 'manual',
      reference_id: `source:${src.id}`,
      started_at: job.status === 'pending' ? null : expect.stringMatching(ISO),
      ended_at: null,
      error_message: null,
      metadata: { action: 'source_sync', reference_id: `source:${src.id}` },
      created_at: expect.stringMatching(ISO),
    });
    expect(['pending', 'running']).toContain(job.status);

    expectError(
      await admin.post('/api/sync/jobs', { source: src.name }),
      409,
      'conflict',
      'second sync while the first is pending/running',
    );
    expectError(await member.post('/api/sync/jobs', { source: String(src.id) }), 409, 'conflict', 'second sync, source by id');
    const done = await waitSync(job.id);
    expect(done).toMatchObject({
      id: job.id,
      status: 'succeeded',
      error_message: null,
      stats: stats({ checked: 1, copied: 1, bytes: content.length }),
    });
    expect(done.started_at).toMatch(ISO);
    expect(done.ended_at).toMatch(ISO);
    expect(await contentsOf(src.package_id)).toEqual({ 'f.txt': content });

    // Over: a member may start the next one (by id), a viewer may not, nobody without credentials.
    const next = await member.post('/api/sync/jobs', { source: String(src.id) });
    expect(next.status, next.text).toBe(200);
    expect(next.body.reference_id).toBe(`source:${src.id}`);
    expectError(await viewer.post('/api/sync/jobs', { source: src.name }), 403, 'forbidden', 'viewer');
    expectError(await api().post('/api/sync/jobs', { source: src.name }), 401, 'unauthorized', 'no credentials');
    expectError(await api().get('/api/sync/jobs'), 401, 'unauthorized', 'no credentials list');
    expectError(await api().get(`/api/sync/jobs/${job.id}`), 401, 'unauthorized', 'no credentials get');
    expect((await viewer.get(`/api/sync/jobs/${job.id}`)).status).toBe(200);
    const second = await waitSync(next.body.id, member);
    expect(second).toMatchObject({ status: 'succeeded', stats: stats({ checked: 1, skipped: 1 }) });
  });

  /** A tenant with a default source and a plain one, both listing one file. */
  const tenantWithDefault = async () => {
    const t = await newTenant();
    const s = site();
    const content = Buffer.from('default content');
    s.serve('d.txt', { body: content });
    s.serveJson('manifest.json', { files: [{ path: 'd.txt', url: 'd.txt', etag: '"v1"' }] });
    const plain = await manifestSource(s.url('manifest.json'), {}, t.as, t.bucketID);
    const def = await manifestSource(s.url('manifest.json'), { is_default: true }, t.as, t.bucketID);
    return { ...t, content, plain, def };
  };
  const EMPTY_JSON: CallOptions = { raw: '', headers: { 'content-type': 'application/json' } };

  it('uses the default source for a JSON body that is empty or {}, and refuses unknown sources, other fields and a missing default (400)', async () => {
    const t = await newTenant();
    const s = site();
    const content = Buffer.from('default content');
    s.serve('d.txt', { body: content });
    s.serveJson('manifest.json', { files: [{ path: 'd.txt', url: 'd.txt', etag: '"v1"' }] });
    const plain = await manifestSource(s.url('manifest.json'), {}, t.as, t.bucketID);

    const noDefault = await t.as.post('/api/sync/jobs', undefined, EMPTY_JSON);
    expectError(noDefault, 400, 'bad_request', 'no default, empty JSON body');
    expect(noDefault.body.message).toMatch(/no default source/);
    expectError(await t.as.post('/api/sync/jobs', {}), 400, 'bad_request', 'no default, {}');

    const def = await manifestSource(s.url('manifest.json'), { is_default: true }, t.as, t.bucketID);
    const emptyJson = await t.as.post('/api/sync/jobs', undefined, EMPTY_JSON);
    expect(emptyJson.status, emptyJson.text).toBe(200);
    expect(emptyJson.body).toMatchObject({ job_type: 'source_sync', trigger_type: 'manual', reference_id: `source:${def.id}` });
    expect(await waitSync(emptyJson.body.id, t.as)).toMatchObject({
      status: 'succeeded',
      stats: stats({ checked: 1, copied: 1, bytes: content.length }),
    });

    const emptyObject = await t.as.post('/api/sync/jobs', {});
    expect(emptyObject.status, emptyObject.text).toBe(200);
    expect(emptyObject.body.reference_id).toBe(`source:${def.id}`);
    expect(await waitSync(emptyObject.body.id, t.as)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 1, skipped: 1 }) });

    const named = await t.as.post('/api/sync/jobs', { source: plain.name });
    expect(named.status, named.text).toBe(200);
    expect(named.body.reference_id).toBe(`source:${plain.id}`);
    expect(await waitSync(named.body.id, t.as)).toMatchObject({
      status: 'succeeded',
      stats: stats({ checked: 1, copied: 1, bytes: content.length }),
    });
    expect(Object.keys(await objectsOf(plain.package_id, t.as))).toEqual(['d.txt']);
    expect(Object.keys(await objectsOf(def.package_id, t.as))).toEqual(['d.txt']);

    expectError(await t.as.post('/api/sync/jobs', { story_types: ['main'] }), 400, 'bad_request', 'story_types');
    expectError(
      await t.as.post('/api/sync/jobs', { source: def.name, story_types: ['event'] }),
      400,
      'bad_request',
      'source and story_types',
    );
    expectError(await t.as.post('/api/sync/jobs', { source: 'moesekai' }), 400, 'bad_request', 'unknown source');
    expectError(await t.as.post('/api/sync/jobs', { source: '99999999' }), 400, 'bad_request', 'unknown source id');
    expectError(await t.as.post('/api/sync/jobs', { source: '' }), 400, 'bad_request', 'empty source');
    expectError(await t.as.post('/api/sync/jobs', { source: 5 }), 400, 'bad_request', 'source not a string');
    expectError(
      await t.as.post('/api/sync/jobs', undefined, { raw: '{', headers: { 'content-type': 'application/json' } }),
      400,
      'bad_request',
      'broken JSON',
    );
    expectError(
      await t.as.post('/api/sync/jobs', undefined, { raw: '[]', headers: { 'content-type': 'application/json' } }),
      400,
      'bad_request',
      'a JSON array',
    );
    // Another tenant's source is unknown here.
    expectError(await admin.post('/api/sync/jobs', { source: String(def.id) }), 400, 'bad_request', "another tenant's source by id");
    // A viewer may not start one, whatever the body.
    expectError(await viewer.post('/api/sync/jobs', undefined, EMPTY_JSON), 403, 'forbidden', 'viewer, empty JSON body');
  });

  it('uses the default source when the request has no body at all (no content type)', async () => {
    const t = await tenantWithDefault();
    const noBody = await t.as.post('/api/sync/jobs');
    expect(noBody.status, `POST /api/sync/jobs without a body: ${noBody.text}`).toBe(200);
    expect(noBody.body).toMatchObject({ job_type: 'source_sync', trigger_type: 'manual', reference_id: `source:${t.def.id}` });
    expect(await waitSync(noBody.body.id, t.as)).toMatchObject({
      status: 'succeeded',
      stats: stats({ checked: 1, copied: 1, bytes: t.content.length }),
    });

    // Without a default, the answer says so; a viewer is refused for the role, not the body.
    const bare = await newTenant();
    const noDefault = await bare.as.post('/api/sync/jobs');
    expectError(noDefault, 400, 'bad_request', 'no default, no body');
    expect(noDefault.body.message).toMatch(/no default source/);
    expectError(await viewer.post('/api/sync/jobs'), 403, 'forbidden', 'viewer, no body');
  });

  // ---- 3. http_manifest end to end ----

  it('syncs a {files: [...]} manifest byte for byte, skips entries whose sha256, etag or size+mtime are unchanged, and updates the one that changed', async () => {
    const s = site();
    const a = Buffer.from('alpha content\n');
    let b = randomBytes(3000);
    const c = Buffer.from('gamma '.repeat(100));
    const e = randomBytes(777);
    s.serve('files/a.txt', { body: a });
    s.serve('files/b.bin', { body: b });
    s.serve('files/c.txt', { body: c });
    s.serve('files/e.dat', { body: e });
    const manifest = (bEtag: string) => ({
      files: [
        { path: 'a.txt', url: s.url('files/a.txt'), sha256: sha256(a), size: a.length },
        { path: 'dir/b.bin', url: 'files/b.bin', etag: bEtag },
        { path: 'dir/sub/c.txt', url: './files/c.txt', size: c.length, mtime: '2024-05-01T12:00:00.123Z' },
        { path: 'e.dat', url: `${s.base}/files/e.dat`, size: e.length, mtime: 1_714_564_800_456 },
      ],
    });
    s.serveJson('manifest.json', manifest('"b-1"'));
    const src = await manifestSource(s.url('manifest.json'), {
      config: { url: s.url('manifest.json'), headers: { Authorization: `Bearer ${HEADER_TOKEN}` } },
    });

    const first = await sync(src.name);
    expect(first).toMatchObject({
      status: 'succeeded',
      error_message: null,
      errors: [],
      stats: stats({ checked: 4, copied: 4, bytes: a.length + b.length + c.length + e.length }),
    });
    expect(first.result).toEqual(first.stats);
    expect(await contentsOf(src.package_id)).toEqual({ 'a.txt': a, 'dir/b.bin': b, 'dir/sub/c.txt': c, 'e.dat': e });
    const objects = await objectsOf(src.package_id);
    expect(objects['a.txt']).toMatchObject({ size: String(a.length), fileHash: `Full${upperSha(a)}` });
    expect(objects['dir/b.bin']).toMatchObject({ size: String(b.length), fileHash: `Full${upperSha(b)}` });
    // The headers go with the manifest's request only.
    expect(s.hitsOf('manifest.json').map((h) => h.authorization)).toEqual([`Bearer ${HEADER_TOKEN}`]);
    for (const f of ['files/a.txt', 'files/b.bin', 'files/c.txt', 'files/e.dat'])
      expect(
        s.hitsOf(f).map((h) => h.authorization),
        f,
      ).toEqual([undefined]);

    // Unchanged: nothing copied, nothing fetched but the manifest.
    const again = await sync(src.name);
    expect(again).toMatchObject({ status: 'succeeded', stats: stats({ checked: 4, skipped: 4 }) });
    for (const f of ['files/a.txt', 'files/b.bin', 'files/c.txt', 'files/e.dat']) expect(s.fetches(f), f).toBe(1);
    expect(s.fetches('manifest.json')).toBe(2);
    expect((await objectsOf(src.package_id))['a.txt'].objectID).toBe(objects['a.txt'].objectID);

    // A new etag (and content) for one entry: exactly that one is fetched and updated.
    b = randomBytes(2500);
    s.serve('files/b.bin', { body: b });
    s.serveJson('manifest.json', manifest('"b-2"'));
    const changed = await sync(src.name);
    expect(changed).toMatchObject({ status: 'succeeded', stats: stats({ checked: 4, updated: 1, skipped: 3, bytes: b.length }) });
    expect([s.fetches('files/a.txt'), s.fetches('files/b.bin'), s.fetches('files/c.txt'), s.fetches('files/e.dat')]).toEqual([1, 2, 1, 1]);
    expect(await contentsOf(src.package_id)).toEqual({ 'a.txt': a, 'dir/b.bin': b, 'dir/sub/c.txt': c, 'e.dat': e });
    expect((await objectsOf(src.package_id))['dir/b.bin']).toMatchObject({ size: String(b.length), fileHash: `Full${upperSha(b)}` });

    // A new time for a size+mtime entry: that one is updated.
    const m = manifest('"b-2"');
    m.files[2]!.mtime = '2024-06-01T00:00:00Z';
    s.serveJson('manifest.json', m);
    expect(await sync(src.name)).toMatchObject({
      status: 'succeeded',
      stats: stats({ checked: 4, updated: 1, skipped: 3, bytes: c.length }),
    });
    expect([s.fetches('files/a.txt'), s.fetches('files/b.bin'), s.fetches('files/c.txt'), s.fetches('files/e.dat')]).toEqual([1, 2, 2, 1]);
  });

  it('syncs a JSON array manifest with absolute and relative urls; entries without sha256, etag or size+mtime are fetched every time', async () => {
    const s = site();
    const x = Buffer.from('x marks the spot');
    const y = randomBytes(4096);
    const z = Buffer.from('zzz, size only');
    s.serve('files/x.txt', { body: x });
    s.serve('files/y.bin', { body: y });
    s.serve('files/z.txt', { body: z });
    s.serveJson('lists/manifest.json', [
      { path: 'x.txt', url: s.url('files/x.txt'), sha256: sha256(x).toUpperCase() },
      { path: 'deep/er/y.bin', url: '../files/y.bin' },
      { path: 'z.txt', url: `${s.base}/files/z.txt`, size: z.length },
    ]);
    const src = await manifestSource(s.url('lists/manifest.json'));
    const first = await sync(src.name);
    expect(first).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, copied: 3, bytes: x.length + y.length + z.length }) });
    expect(await contentsOf(src.package_id)).toEqual({ 'x.txt': x, 'deep/er/y.bin': y, 'z.txt': z });

    const again = await sync(src.name);
    expect(again).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, updated: 2, skipped: 1, bytes: y.length + z.length }) });
    expect([s.fetches('files/x.txt'), s.fetches('files/y.bin'), s.fetches('files/z.txt')]).toEqual([1, 2, 2]);
    expect(await contentsOf(src.package_id)).toEqual({ 'x.txt': x, 'deep/er/y.bin': y, 'z.txt': z });
  });

  it('refuses a file whose content does not match its sha256: the job fails naming it and no object is made', async () => {
    const s = site();
    const good = Buffer.from('good bytes');
    const bad = Buffer.from('tampered bytes');
    s.serve('good.txt', { body: good });
    s.serve('bad.txt', { body: bad });
    s.serveJson('manifest.json', [
      { path: 'good.txt', url: 'good.txt', sha256: sha256(good) },
      { path: 'bad.txt', url: 'bad.txt', sha256: sha256(Buffer.from('what was promised')), size: bad.length },
    ]);
    const src = await manifestSource(s.url('manifest.json'));
    const job = await sync(src.name);
    expect(job).toMatchObject({ status: 'failed', attempts: 1, stats: stats({ checked: 2, copied: 1, failed: 1, bytes: good.length }) });
    expect(job.error_message).toMatch(/1 files? of source/);
    expect(job.errors).toContainEqual(expect.objectContaining({ item: 'bad.txt', message: expect.stringMatching(/SHA-256/) }));
    expect(job.errors.filter((e: any) => e.item !== undefined).map((e: any) => e.item)).toEqual(['bad.txt']);
    expect(await contentsOf(src.package_id)).toEqual({ 'good.txt': good });
  });

  it('reports manifest entries that cannot be synced (a ../ path, no url, a repeated path) and syncs the others', async () => {
    const s = site();
    const ok = Buffer.from('ok');
    const dup1 = Buffer.from('first dup');
    const dup2 = Buffer.from('second dup');
    s.serve('ok.txt', { body: ok });
    s.serve('dup1.txt', { body: dup1 });
    s.serve('dup2.txt', { body: dup2 });
    s.serve('x', { body: 'escaped' });
    s.serveJson('manifest.json', [
      { path: 'ok.txt', url: 'ok.txt' },
      { path: '../x', url: 'x' },
      { path: '/abs.txt', url: 'x' },
      { path: 'nourl.txt' },
      { path: 'dup.txt', url: 'dup1.txt' },
      { path: 'dup.txt', url: 'dup2.txt' },
    ]);
    const src = await manifestSource(s.url('manifest.json'));
    const job = await sync(src.name);
    expect(job).toMatchObject({
      status: 'failed',
      attempts: 1,
      stats: stats({ checked: 2, copied: 2, failed: 4, bytes: ok.length + dup1.length }),
    });
    expect(job.error_message).toMatch(/4 files of source/);
    const items = job.errors
      .filter((e: any) => e.item !== undefined)
      .map((e: any) => e.item)
      .sort();
    expect(items).toEqual(['../x', '/abs.txt', 'dup.txt', 'nourl.txt']);
    expect(job.errors.find((e: any) => e.item === '../x').message).toMatch(/\.\./);
    expect(job.errors.find((e: any) => e.item === 'nourl.txt').message).toMatch(/url/);
    expect(job.errors.find((e: any) => e.item === 'dup.txt').message).toMatch(/more than once/);
    expect(await contentsOf(src.package_id)).toEqual({ 'ok.txt': ok, 'dup.txt': dup1 });
    expect(s.fetches('x')).toBe(0);
  });

  it('with mirror, deletes objects the manifest no longer lists (not in a run where a file failed); without it, keeps them', async () => {
    const s = site();
    const files = { 'a.txt': Buffer.from('a'), 'b/b.txt': Buffer.from('bb'), 'c.txt': Buffer.from('ccc') };
    for (const [p, body] of Object.entries(files)) s.serve(`f/${p}`, { body });
    const entry = (p: keyof typeof files) => ({ path: p, url: `f/${p}`, sha256: sha256(files[p]) });
    s.serveJson('mirror.json', [entry('a.txt'), entry('b/b.txt'), entry('c.txt')]);
    s.serveJson('keep.json', [entry('a.txt'), entry('b/b.txt'), entry('c.txt')]);
    const mirror = await manifestSource(s.url('mirror.json'), { mirror: true });
    const keep = await manifestSource(s.url('keep.json'), { mirror: false });
    expect(await sync(mirror.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, copied: 3, bytes: 6 }) });
    expect(await sync(keep.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, copied: 3, bytes: 6 }) });

    s.serveJson('mirror.json', [entry('a.txt'), entry('b/b.txt')]);
    s.serveJson('keep.json', [entry('a.txt'), entry('b/b.txt')]);
    expect(await sync(mirror.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 2, skipped: 2, deleted: 1 }) });
    expect(Object.keys(await objectsOf(mirror.package_id))).toEqual(['a.txt', 'b/b.txt']);
    expect(await sync(keep.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 2, skipped: 2 }) });
    expect(Object.keys(await objectsOf(keep.package_id))).toEqual(['a.txt', 'b/b.txt', 'c.txt']);

    s.serveJson('mirror.json', [entry('a.txt')]);
    expect(await sync(mirror.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 1, skipped: 1, deleted: 1 }) });
    expect(await contentsOf(mirror.package_id)).toEqual({ 'a.txt': files['a.txt'] });
  });

  it('with mirror, deletes nothing in a run where a file failed to download', async () => {
    const s = site();
    const a = Buffer.from('a');
    const b = Buffer.from('bb');
    s.serve('a.txt', { body: a });
    s.serve('b.txt', { body: b });
    s.serveJson('mirror.json', [
      { path: 'a.txt', url: 'a.txt' },
      { path: 'b.txt', url: 'b.txt' },
    ]);
    const mirror = await manifestSource(s.url('mirror.json'), { mirror: true });
    expect(await sync(mirror.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 2, copied: 2, bytes: 3 }) });
    s.serve('a.txt', { status: 500, body: 'down' });
    s.serveJson('mirror.json', [{ path: 'a.txt', url: 'a.txt' }]);
    expect(await sync(mirror.name)).toMatchObject({ status: 'failed', stats: stats({ checked: 1, failed: 1 }) });
    expect(await contentsOf(mirror.package_id)).toEqual({ 'a.txt': a, 'b.txt': b });
  });

  it('with mirror, deletes nothing in a run where a manifest entry was refused (a ../ path)', async () => {
    const s = site();
    const a = Buffer.from('a');
    const b = Buffer.from('bb');
    s.serve('a.txt', { body: a });
    s.serve('b.txt', { body: b });
    const entry = (p: string, body: Buffer) => ({ path: p, url: p, sha256: sha256(body) });
    s.serveJson('mirror.json', [entry('a.txt', a), entry('b.txt', b)]);
    const mirror = await manifestSource(s.url('mirror.json'), { mirror: true });
    expect(await sync(mirror.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 2, copied: 2, bytes: 3 }) });
    // b.txt is no longer listed, but the run has a failed entry: nothing may be deleted.
    s.serveJson('mirror.json', [entry('a.txt', a), { path: '../evil', url: 'a.txt' }]);
    const failed = await sync(mirror.name);
    expect(failed).toMatchObject({ status: 'failed', stats: stats({ checked: 1, skipped: 1, failed: 1 }) });
    expect(Object.keys(await objectsOf(mirror.package_id))).toEqual(['a.txt', 'b.txt']);
  });

  // ---- 4. local and s3 sources ----

  it('syncs a local directory with nested folders, skips it unchanged, and updates a modified file', async () => {
    const dir = join(roots, 'local-e2e');
    const files: Record<string, Buffer> = {
      'top.txt': Buffer.from('top'),
      'x/w.txt': Buffer.from('double-u'),
      'x/y/z.bin': randomBytes(5000),
    };
    writeTree(dir, files, 1_700_000_000_123);
    const pkg = await newPackage('local-e2e');
    const src = await createSource({ name: 'local-e2e', type: 'local', config: { path: dir }, package_id: pkg });
    const bytes = Object.values(files).reduce((n, b) => n + b.length, 0);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, copied: 3, bytes }) });
    expect(await contentsOf(pkg)).toEqual(files);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, skipped: 3 }) });

    files['x/w.txt'] = Buffer.from('double-u, changed');
    writeTree(dir, { 'x/w.txt': files['x/w.txt'] }, 1_700_000_999_000);
    expect(await sync(src.name)).toMatchObject({
      status: 'succeeded',
      stats: stats({ checked: 3, updated: 1, skipped: 2, bytes: files['x/w.txt'].length }),
    });
    expect(await contentsOf(pkg)).toEqual(files);
    // Same size, new time: updated as well.
    files['top.txt'] = Buffer.from('TOP');
    writeTree(dir, { 'top.txt': files['top.txt'] }, 1_700_001_000_000);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, updated: 1, skipped: 2, bytes: 3 }) });
    expect(await contentsOf(pkg)).toEqual(files);
  });

  it('syncs an s3 bucket prefix with nested folders, skips it unchanged, and updates a modified object', async () => {
    const files: Record<string, Buffer> = {
      'one.txt': Buffer.from('one'),
      'n/two.bin': randomBytes(3333),
      'n/m/three.txt': Buffer.from('three'),
    };
    for (const [p, body] of Object.entries(files)) await s3Put(s3c, S3_BUCKET, `data/${p}`, body);
    await s3Put(s3c, S3_BUCKET, 'data-other/outside.txt', Buffer.from('not under the prefix'));
    await s3Put(s3c, S3_BUCKET, 'elsewhere.txt', Buffer.from('not under the prefix either'));
    const pkg = await newPackage('s3-e2e');
    const src = await createSource({
      name: 's3-e2e',
      type: 's3',
      config: {
        endpoint: s3.endpoint,
        region: 'us-east-1',
        bucket: S3_BUCKET,
        prefix: 'data',
        access_key_id: S3_CREDENTIAL.accessKeyId,
        secret_access_key: S3_SECRET,
      },
      package_id: pkg,
    });
    const bytes = Object.values(files).reduce((n, b) => n + b.length, 0);
    const first = await sync(src.name);
    expect(first, JSON.stringify(first.errors)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, copied: 3, bytes }) });
    expect(await contentsOf(pkg)).toEqual(files);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, skipped: 3 }) });

    files['n/two.bin'] = randomBytes(1234);
    await s3Put(s3c, S3_BUCKET, 'data/n/two.bin', files['n/two.bin']);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({ checked: 3, updated: 1, skipped: 2, bytes: 1234 }) });
    expect(await contentsOf(pkg)).toEqual(files);
    // The job's views never show the secret (checked with every other answer at the end).
    const jobs = await admin.get(`/api/sync/jobs?source=${src.name}`);
    for (const j of jobs.body.items) {
      await admin.get(`/api/jobs/${j.id}`);
      await admin.get(`/api/jobs/${j.id}/logs`);
    }
  });

  // ---- 5. failure paths ----

  it.skipIf(nativeOffRun)('fails a sync whose manifest URL never answers, with an error message, after its attempts', async () => {
    const s = site();
    s.serve('hang.json', { hang: true });
    const src = await manifestSource(s.url('hang.json'));
    const started = await startSync(src.name);
    // Each attempt waits YUNJI_SOURCE_TIMEOUT (2 s); retries back off 2 s, then 4 s.
    const job = await waitSync(started.id, admin, 45_000);
    expect(job).toMatchObject({ status: 'failed', attempts: 3, max_attempts: 3, ended_at: expect.stringMatching(ISO) });
    // Said as any failed connection is (no telling a silent port from a closed one).
    expect(job.error_message).toMatch(/hang\.json is unreachable$/);
    expect(s.fetches('hang.json')).toBe(3);
    expect(await objectsOf(src.package_id)).toEqual({});
    // Over: the source may be synced again.
    s.serveJson('hang.json', []);
    expect(await sync(src.name)).toMatchObject({ status: 'succeeded', stats: stats({}) });
  });

  it.skipIf(nativeOffRun)(
    'refuses a manifest of more than 1,000,000 entries at once, with the limit in the error, and stays up',
    async () => {
      const s = site();
      const entries = Array.from({ length: 1_000_001 }, (_, i) => `{"path":"f${i}","url":"u"}`);
      s.serve('huge.json', { body: `[${entries.join(',')}]`, contentType: 'application/json' });
      const huge = await manifestSource(s.url('huge.json'));
      // The manifest is read as it arrives: its first million entries are checked before the one over.
      const job = await waitSync((await startSync(huge.name)).id, admin, 300_000);
      expect(job).toMatchObject({ status: 'failed', attempts: 1 });
      expect(job.error_message).toMatch(/lists more than 1000000 files/);
      expect(await objectsOf(huge.package_id)).toEqual({});
      expect((await admin.get('/api/sync/sources')).status).toBe(200);
    },
    600_000,
  );

  it('syncs a manifest of exactly 1,000,000 entries (3 valid, the rest refused one by one): bounded errors, memory, and a server that keeps answering', async () => {
    const s = site();
    const N = 1_000_000;
    const files: Record<string, Buffer> = {
      'ok/first.txt': Buffer.from('first'),
      'ok/middle.bin': randomBytes(1000),
      'ok/last.txt': Buffer.from('last of a million'),
    };
    const valid = Object.keys(files);
    // The middle file answers only once this test has seen the job running and the server answering.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    for (const p of valid) s.serve(p, p === 'ok/middle.bin' ? { body: files[p]!, gate } : { body: files[p]! });
    const at = new Map([
      [0, 'ok/first.txt'],
      [N / 2, 'ok/middle.bin'],
      [N - 1, 'ok/last.txt'],
    ]);
    // Every 10th refused entry has a bad sha256 (a fine path), the others a path escaping the package.
    const parts: string[] = [];
    for (let i = 0; i < N; i++) {
      const p = at.get(i);
      if (p !== undefined) parts.push(JSON.stringify({ path: p, url: p, sha256: sha256(files[p]!) }));
      else if (i % 10 === 1) parts.push(`{"path":"bad-sha/${i}","url":"u","sha256":"not-hex"}`);
      else parts.push(`{"path":"../escape-${i}","url":"u"}`);
    }
    s.serve('million.json', { body: `[${parts.join(',')}]`, contentType: 'application/json' });
    parts.length = 0;
    const src = await manifestSource(s.url('million.json'));

    // Peak memory of this sync only: writing 5 to clear_refs resets VmHWM (Linux).
    const pid = server.proc.pid!;
    const peakKb = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {
      // Not resettable here: the bound below then covers the whole process's life.
    }
    const rssBefore = peakKb();

    const started = await startSync(src.name);
    // Other requests while the job runs: each must be answered.
    let answeredWhileRunning = 0;
    let last: unknown;
    const probe = async (path: string) => {
      const res = await admin.get(path);
      expect(res.status, `${path} during the sync: ${res.text.slice(0, 500)}`).toBe(200);
      return res;
    };
    const job = await until(
      `sync job ${started.id} to end`,
      async () => {
        const before = (await probe(`/api/sync/jobs/${started.id}`)).body;
        last = before;
        if (TERMINAL_STATUSES.includes(before.status)) return before;
        await probe('/api/sync/sources');
        const after = (await probe(`/api/sync/jobs/${started.id}`)).body;
        if (before.status === 'running' && after.status === 'running') {
          answeredWhileRunning++;
          open();
        }
        return undefined;
      },
      600_000,
      () => JSON.stringify(last).slice(0, 2000),
    );
    open();
    const rssPeakMb = peakKb() / 1024;
    console.log(
      `[${kind}] 1,000,000-entry manifest sync: server VmHWM ${rssPeakMb.toFixed(0)} MB (${(rssBefore / 1024).toFixed(0)} MB before it)`,
    );
    expect(answeredWhileRunning).toBeGreaterThan(0);

    const failed = N - valid.length;
    const bytes = Object.values(files).reduce((n, b) => n + b.length, 0);
    expect(job, JSON.stringify(job).slice(0, 2000)).toMatchObject({
      status: 'failed',
      attempts: 1,
      stats: stats({ checked: 3, copied: 3, failed, bytes }),
      error_count: failed + 1,
    });
    expect(job.error_message).toBe(`${failed} files of source '${src.name}' failed (see the errors)`);
    // A bounded list: the first refusals, each naming its entry and why, then why the job failed.
    expect(job.errors.length).toBeGreaterThan(10);
    expect(job.errors.length).toBeLessThanOrEqual(100);
    expect(job.errors.at(-1)).toEqual({ message: job.error_message, at: expect.any(Number) });
    expect(job.errors).toContainEqual(
      expect.objectContaining({ item: '../escape-2', message: expect.stringMatching(/manifest entry 2: .*'\.\.' segment/) }),
    );
    expect(job.errors).toContainEqual(
      expect.objectContaining({ item: 'bad-sha/1', message: "manifest entry 1: 'sha256' must be 64 hex digits" }),
    );
    for (const path of ['/api/sync/jobs', '/api/jobs']) {
      const res = await admin.get(`${path}/${job.id}`);
      expect(res.status, res.text.slice(0, 500)).toBe(200);
      expect(res.text.length, `${path}/${job.id} answers ${res.text.length} characters`).toBeLessThan(100_000);
      expect(res.body).toMatchObject({ error_count: failed + 1, errors: job.errors, stats: job.stats });
    }
    expect(await contentsOf(src.package_id)).toEqual(files);
    expect(s.fetches('million.json')).toBe(1);
    for (const p of valid) expect(s.fetches(p), p).toBe(1);
    expect(s.fetches('u')).toBe(0);
    expect(rssPeakMb).toBeLessThan(1536);
    expect((await admin.get('/api/sync/sources')).status).toBe(200);
  }, 600_000);

  it('fails a sync whose manifest is not JSON, or not a list; a file answering HTTP 500 fails that entry only', async () => {
    const s = site();
    s.serve('html.json', { body: '<html>not json</html>', contentType: 'text/html' });
    const notJson = await manifestSource(s.url('html.json'));
    const job = await sync(notJson.name);
    expect(job).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job.error_message).toMatch(/not JSON/);

    s.serveJson('object.json', { entries: [] });
    const notList = await manifestSource(s.url('object.json'));
    const job2 = await sync(notList.name);
    expect(job2).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job2.error_message).toMatch(/neither a JSON array nor an object with a "files" array/);

    const ok = Buffer.from('fine');
    s.serve('ok.txt', { body: ok });
    s.serve('broken.txt', { status: 500, body: 'boom' });
    s.serveJson('partly.json', [
      { path: 'ok.txt', url: 'ok.txt' },
      { path: 'broken.txt', url: 'broken.txt' },
      { path: 'missing.txt', url: 'nowhere.txt' },
    ]);
    const partly = await manifestSource(s.url('partly.json'));
    const job3 = await sync(partly.name);
    expect(job3).toMatchObject({ status: 'failed', attempts: 1, stats: stats({ checked: 3, copied: 1, failed: 2, bytes: ok.length }) });
    expect(job3.error_message).toMatch(/2 files of source/);
    expect(job3.errors).toContainEqual(expect.objectContaining({ item: 'broken.txt', message: expect.stringMatching(/HTTP 500/) }));
    expect(job3.errors).toContainEqual(expect.objectContaining({ item: 'missing.txt', message: expect.stringMatching(/HTTP 404/) }));
    expect(await contentsOf(partly.package_id)).toEqual({ 'ok.txt': ok });
  });

  // ---- 6. GET /api/sync/jobs ----

  it('lists sync jobs newest first, filtered by status and source, paged; other jobs and tenants are 404', async () => {
    const t = await newTenant();
    const s = site();
    s.serve('f.txt', { body: 'f' });
    s.serveJson('good.json', [{ path: 'f.txt', url: 'f.txt', sha256: sha256(Buffer.from('f')) }]);
    s.serve('bad.json', { body: 'nope' });
    const good = await manifestSource(s.url('good.json'), {}, t.as, t.bucketID);
    const bad = await manifestSource(s.url('bad.json'), {}, t.as, t.bucketID);
    const j1 = await sync(good.name, t.as);
    const j2 = await sync(bad.name, t.as);
    const j3 = await sync(good.name, t.as);
    expect([j1.status, j2.status, j3.status]).toEqual(['succeeded', 'failed', 'succeeded']);
    // A job of another kind is neither listed nor found here.
    const noop = await t.as.post('/api/jobs', { action: 'noop', params: { ms: 1 } });
    expect(noop.status, noop.text).toBe(201);

    const ids = async (query: string) => {
      const res = await t.as.get(`/api/sync/jobs${query}`);
      expect(res.status, `${query}: ${res.text}`).toBe(200);
      return { ids: (res.body.items as any[]).map((j) => j.id), meta: res.body.meta, items: res.body.items as any[] };
    };
    const all = await ids('');
    expect(all.ids).toEqual([j3.id, j2.id, j1.id]);
    expect(all.meta).toEqual({ page: 1, page_size: 50, total: 3, total_pages: 1 });
    expect(all.items.every((j) => j.job_type === 'source_sync')).toBe(true);
    expect(all.items[0]).toEqual(j3);

    expect(await ids('?status=succeeded')).toMatchObject({ ids: [j3.id, j1.id], meta: { total: 2 } });
    expect(await ids('?status=failed')).toMatchObject({ ids: [j2.id], meta: { total: 1 } });
    expect(await ids('?status=pending')).toMatchObject({ ids: [], meta: { total: 0, total_pages: 0 } });
    expect(await ids(`?source=${good.name}`)).toMatchObject({ ids: [j3.id, j1.id], meta: { total: 2 } });
    expect(await ids(`?source=${bad.id}`)).toMatchObject({ ids: [j2.id], meta: { total: 1 } });
    expect(await ids(`?source=${good.name}&status=failed`)).toMatchObject({ ids: [], meta: { total: 0 } });
    expect(await ids('?source=no-such-source')).toMatchObject({ ids: [], meta: { total: 0 } });
    expect(await ids('?page=2&page_size=1')).toMatchObject({ ids: [j2.id], meta: { page: 2, page_size: 1, total: 3, total_pages: 3 } });
    expect(await ids('?page=4&page_size=1')).toMatchObject({ ids: [], meta: { page: 4, page_size: 1, total: 3, total_pages: 3 } });
    expectError(await t.as.get('/api/sync/jobs?status=bogus'), 400, 'bad_request', 'unknown status');
    expectError(await t.as.get('/api/sync/jobs?page_size=1000'), 400, 'bad_request', 'page_size too large');

    expect((await t.as.get(`/api/sync/jobs/${j1.id}`)).body).toEqual(j1);
    expectError(await t.as.get(`/api/sync/jobs/${noop.body.id}`), 404, 'not_found', 'a noop job');
    expect((await t.as.get(`/api/jobs/${noop.body.id}`)).status).toBe(200);
    for (const id of ['abc', '1.5', '-1', '0']) expectError(await t.as.get(`/api/sync/jobs/${id}`), 400, 'bad_request', `id ${id}`);
    expectError(await t.as.get('/api/sync/jobs/99999999'), 404, 'not_found', 'no such job');
    // Another tenant's sync job.
    expectError(await admin.get(`/api/sync/jobs/${j1.id}`), 404, 'not_found', "another tenant's sync job");
    expect((await admin.get('/api/sync/jobs?page_size=200')).body.items.map((j: any) => j.id)).not.toContain(j1.id);
    expect((await admin.get(`/api/sync/jobs?source=${good.id}`)).body).toMatchObject({ items: [], meta: { total: 0 } });
  });

  it('never answered a secret (S3 secret key, manifest headers) in any response body', async () => {
    // Read everything once more, as the admin and the viewer.
    for (const as of [admin, viewer]) {
      const list = await as.get('/api/sync/sources?page_size=200');
      for (const s of list.body.items) await as.get(`/api/sync/sources/${s.id}`);
      await as.get('/api/sync/jobs?page_size=200');
      await as.get('/api/jobs?page_size=200');
    }
    expect(seen.length).toBeGreaterThan(100);
    const leaks = seen.filter((text) => text.includes(S3_SECRET) || text.includes(HEADER_TOKEN));
    expect(leaks).toEqual([]);
  });
});
