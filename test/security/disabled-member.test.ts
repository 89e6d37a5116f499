import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, newTenantClient, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';
import { until, type Api } from '../helpers/sync.ts';

/**
 * A member whose membership is disabled reads and changes nothing in that tenant, on any surface,
 * with their session or their API key; only the routes that show where they stand or let them
 * leave answer. The routes are taken from the server's own OpenAPI document, so a new route is
 * covered without touching this test.
 */
const kinds = await databaseKinds();

/** Routes a disabled member still reaches: the session view, their tenants, switching tenant, logging out, accepting an invitation. */
const OPTED_IN = new Set([
  'GET /api/auth/session',
  'GET /api/auth/tenants',
  'PUT /api/auth/tenant',
  'POST /api/auth/logout',
  'POST /api/auth/invitations/accept',
]);
/** Routes without credentials at all (nothing of a tenant behind them). */
const PUBLIC = new Set(['POST /api/auth/login', 'GET /healthz', 'GET /readyz']);

/** The message of a failure in whichever envelope its surface uses. */
function refusal(path: string, res: ApiResponse): { status: number; code: unknown; message: unknown } {
  const b = res.body ?? {};
  if (path.startsWith('/v1/')) return { status: res.status, code: b.code, message: b.message };
  if (path.startsWith('/mj/')) return { status: res.status, code: b.code, message: b.description };
  if (path.startsWith('/api/sync/performSync') || path.startsWith('/api/sync/getSyncInfo'))
    return { status: res.status, code: b.code, message: b.msg };
  return { status: res.status, code: b.code, message: b.message };
}
const expectedCode = (path: string) =>
  path.startsWith('/v1/')
    ? 'Forbidden'
    : path.startsWith('/mj/')
      ? 403
      : path.startsWith('/api/sync/performSync') || path.startsWith('/api/sync/getSyncInfo')
        ? -1
        : 'forbidden';

/** Status of a WebSocket upgrade (101 when it opened). */
function wsStatus(url: string, token: string): Promise<number> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}`);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => (ws.close(), resolve(101)));
    ws.once('error', () => resolve(0));
  });
}

/** An open event stream (WebSocket or SSE) and whether it has been closed by the server. */
interface Stream {
  closed: () => boolean;
  close: () => void;
}

async function openWs(url: string, token: string): Promise<Stream> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}`);
  let closed = false;
  ws.on('close', () => (closed = true));
  ws.on('error', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', () => reject(new Error('ws refused')));
  });
  return { closed: () => closed, close: () => ws.terminate() };
}

async function openSse(url: string, token: string): Promise<Stream> {
  let closed = false;
  const req = httpRequest(`${url}/api/events`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => {
    req.once('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE answered ${res.statusCode}`));
      res.on('data', () => undefined);
      res.once('end', () => (closed = true));
      res.once('close', () => (closed = true));
      resolve();
    });
    req.once('error', (err) => ((closed = true), reject(err)));
    req.end();
  });
  return { closed: () => closed, close: () => req.destroy() };
}

describe.each(kinds)('a disabled member on %s', (kind) => {
  let server: RunningServer;
  let admin: Api;
  let memberId: number;
  let session: string;
  let key: string;
  let projectKey: string;
  let routes: { method: string; path: string }[];
  let otherTenantId: number;

  const concrete = (path: string) => path.replace('{projectKey}', projectKey).replace(/\{[^}]+\}/g, '1');
  const setStatus = async (status: string) => expect((await admin.patch(`/api/users/${memberId}`, { status })).status).toBe(200);

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_JOB_POLL: '100' } });
    admin = client(server.url, await login(server.url));
    projectKey = (await admin.get('/api/auth/session')).body.current_tenant.project_key;
    const invite = await admin.post('/api/users/invitations', { email: 'member@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'member-pass' },
    });
    expect(accepted.status).toBe(200);
    memberId = accepted.body.user.id;
    session = accepted.body.token;
    key = (await client(server.url, session).post('/api/keys', { name: 'mine', role: 'member' })).body.key;
    // A second tenant where the member stays active: switching there is how they leave.
    const other = await newTenantClient(server.url, 'Elsewhere');
    const invite2 = await other.post('/api/users/invitations', { email: 'member@example.com', role: 'viewer' });
    expect(
      (
        await call(server.url, 'POST', '/api/auth/invitations/accept', {
          body: { token: invite2.body.invitation_token, password: 'member-pass' },
        })
      ).status,
    ).toBe(200);
    otherTenantId = (await other.get('/api/auth/session')).body.current_tenant.id;
    // Something to read on every surface.
    await admin.post('/api/jobs', { action: 'noop' });
    await admin.post('/v1/bucket/create', { name: 'b' });

    const doc = (await call(server.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => ({ method: m.toUpperCase(), path })),
    );
  });
  afterAll(async () => {
    if (server) expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
  });

  it('reads while active (the routes list is the whole API)', async () => {
    expect(routes.length).toBeGreaterThan(40);
    for (const p of [
      '/api/jobs',
      '/api/sync/sources',
      '/v1/spaceSyncer/listTasks',
      '/v1/bucket/listAll',
      '/mj/task/list-by-condition',
      `/public/${projectKey}/jobs`,
    ]) {
      expect(
        routes.some((r) => concrete(r.path) === p),
        p,
      ).toBe(true);
    }
    for (const token of [session, key]) {
      expect((await call(server.url, 'GET', '/api/jobs', { token })).status).toBe(200);
      expect((await call(server.url, 'GET', '/api/sync/sources', { token })).status).toBe(200);
      expect((await call(server.url, 'GET', '/v1/spaceSyncer/listTasks', { token })).status).toBe(200);
      expect(await wsStatus(server.url, token)).toBe(101);
    }
  });

  it('closes the event streams a member holds when they are disabled', async () => {
    const streams = [
      await openWs(server.url, session),
      await openWs(server.url, key),
      await openSse(server.url, session),
      await openSse(server.url, key),
    ];
    try {
      await setStatus('disabled');
      await until('every event stream of the disabled member to be closed', async () =>
        streams.every((s) => s.closed()) ? true : undefined,
      );
    } finally {
      for (const s of streams) s.close();
      await setStatus('active');
    }
  });

  it('answers every route of every surface 403 in its envelope, with the session and with the API key', async () => {
    await setStatus('disabled');
    try {
      for (const token of [session, key]) {
        for (const { method, path } of routes) {
          const name = `${method} ${path}`;
          if (OPTED_IN.has(name) || PUBLIC.has(name) || path.startsWith('/docs')) continue;
          const res = await call(server.url, method, concrete(path), {
            token,
            ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }),
          });
          const r = refusal(path, res);
          expect(r.status, `${name}: ${res.text.slice(0, 200)}`).toBe(403);
          expect(r.code, name).toBe(expectedCode(path));
          expect(String(r.message), name).toMatch(/disabled/);
        }
        // The cookie carries the session as well as the header does.
        const byCookie = await call(server.url, 'GET', '/api/jobs', { headers: { cookie: `yunji_session=${session}` } });
        expect(byCookie.status).toBe(403);
        // The two event streams.
        expect(await wsStatus(server.url, token), 'ws').toBe(403);
        const sse = await call(server.url, 'GET', `/api/events?token=${encodeURIComponent(token)}`);
        expect(sse.status).toBe(403);
        expect(sse.body.code).toBe('forbidden');
      }
    } finally {
      await setStatus('active');
    }
  });

  it('still lets them see where they stand and leave', async () => {
    await setStatus('disabled');
    try {
      for (const token of [session, key]) {
        const api = client(server.url, token);
        const view = await api.get('/api/auth/session');
        expect(view.status).toBe(200);
        expect(view.body.memberships.find((m: { tenant: { project_key: string } }) => m.tenant.project_key === projectKey).status).toBe(
          'disabled',
        );
        expect((await api.get('/api/auth/tenants')).status).toBe(200);
      }
      // An API key cannot switch or log out (400, as for an active one); a session switches away.
      expect((await client(server.url, key).put('/api/auth/tenant', { tenant_id: otherTenantId })).status).toBe(400);
      expect((await client(server.url, key).post('/api/auth/logout')).status).toBe(400);
      const second = await login(server.url, 'member@example.com', 'member-pass');
      const switched = await client(server.url, second).put('/api/auth/tenant', { tenant_id: otherTenantId });
      expect(switched.status).toBe(200);
      expect((await client(server.url, second).get('/api/jobs')).status).toBe(200);
      // Switching back into the disabled tenant is refused as if it did not exist.
      expect(
        (
          await client(server.url, second).put('/api/auth/tenant', {
            tenant_id: switched.body.memberships.find((m: { status: string }) => m.status === 'disabled').tenant.id,
          })
        ).status,
      ).toBe(404);
      expect((await client(server.url, second).post('/api/auth/logout')).status).toBe(204);
    } finally {
      await setStatus('active');
    }
  });

  it('gives everything back when re-enabled', async () => {
    await setStatus('disabled');
    expect((await call(server.url, 'GET', '/api/jobs', { token: key })).status).toBe(403);
    await setStatus('active');
    for (const token of [session, key]) {
      expect((await call(server.url, 'GET', '/api/jobs', { token })).status).toBe(200);
      expect((await call(server.url, 'GET', '/v1/bucket/listAll', { token })).status).toBe(200);
      expect((await call(server.url, 'GET', `/public/${projectKey}/jobs`, { token })).status).toBe(200);
      expect((await call(server.url, 'POST', '/mj/task/list-by-condition', { token, body: { ids: ['1'] } })).status).toBe(200);
      expect((await call(server.url, 'GET', '/api/sync/getSyncInfo', { token })).status).toBe(200);
      expect(await wsStatus(server.url, token)).toBe(101);
    }
    // Logging out works for the active session too (last: it ends the session).
    expect((await client(server.url, session).post('/api/auth/logout')).status).toBe(204);
  });
});
