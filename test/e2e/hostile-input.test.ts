import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, call, client, earlyResponse, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/** Every route that takes a JSON body, with a body it would accept. */
const bodyRoutes: { method: string; path: string; valid: Record<string, unknown>; auth: boolean }[] = [
  { method: 'POST', path: '/api/auth/login', valid: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD }, auth: false },
  { method: 'PUT', path: '/api/auth/tenant', valid: { tenant_id: 1 }, auth: true },
  { method: 'POST', path: '/api/auth/invitations/accept', valid: { token: 'yi_x', password: 'password-123' }, auth: false },
  { method: 'POST', path: '/api/tenants', valid: { name: 'T' }, auth: true },
  { method: 'POST', path: '/api/users/invitations', valid: { email: 'someone@example.com', role: 'member' }, auth: true },
  { method: 'PATCH', path: '/api/users/1', valid: { role: 'owner' }, auth: true },
  { method: 'POST', path: '/api/keys', valid: { name: 'k', role: 'viewer' }, auth: true },
];

describe.each(kinds)('hostile input on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    token = await login(server.url);
  });
  afterAll(async () => {
    // Whatever was thrown at it, the process is still up and answering.
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
  });

  const send = (r: (typeof bodyRoutes)[number], raw: string | Buffer, contentType = 'application/json') =>
    call(server.url, r.method, r.path, { token: r.auth ? token : undefined, raw, headers: { 'content-type': contentType } });

  const expectBadRequest = (res: { status: number; body: any }, pattern?: RegExp) => {
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('bad_request');
    expect(typeof res.body.message).toBe('string');
    if (pattern) expect(res.body.message).toMatch(pattern);
  };

  it.each(bodyRoutes)('$method $path refuses malformed and mistyped bodies', async (r) => {
    expectBadRequest(await send(r, '{"email": '));
    expectBadRequest(await send(r, '[1, 2]'));
    expectBadRequest(await send(r, '"just a string"'));
    expectBadRequest(await send(r, 'null'));
    expectBadRequest(await send(r, JSON.stringify({ ...r.valid, surprise: 1 })), /unknown field 'surprise'/);
    // Each field: missing (when required), wrong type, empty string.
    for (const field of Object.keys(r.valid)) {
      const { [field]: _, ...rest } = r.valid;
      if (!(r.path.startsWith('/api/users/1') && Object.keys(r.valid).length === 1)) {
        const missing = await send(r, JSON.stringify(rest));
        if (r.path !== '/api/auth/invitations/accept' || field === 'token') expectBadRequest(missing, new RegExp(field));
      }
      expectBadRequest(await send(r, JSON.stringify({ ...r.valid, [field]: { nested: true } })), new RegExp(field));
      expectBadRequest(
        await send(r, JSON.stringify({ ...r.valid, [field]: typeof r.valid[field] === 'number' ? String(r.valid[field]) : 12345 })),
        new RegExp(field),
      );
      expectBadRequest(await send(r, JSON.stringify({ ...r.valid, [field]: '' })), new RegExp(field));
    }
    const wrongType = await send(r, JSON.stringify(r.valid), 'text/plain');
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.code).toBe('unsupported_media_type');
  });

  it.each(bodyRoutes)('$method $path answers a 10 MB body with 413 and stays up', async (r) => {
    const res = await earlyResponse(server.url, r.method, r.path, 10 * 1024 * 1024, r.auth ? token : undefined);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).code).toBe('too_large');
    expect(JSON.parse(res.text).message).toMatch(/1048576 bytes/);
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('refuses 10 KB emails and passwords beyond their limits', async () => {
    const longEmail = `${'a'.repeat(10 * 1024)}@example.com`;
    expectBadRequest(await call(server.url, 'POST', '/api/auth/login', { body: { email: longEmail, password: 'x' } }), /email/);
    expectBadRequest(await client(server.url, token).post('/api/users/invitations', { email: longEmail, role: 'member' }), /email/);
    expectBadRequest(
      await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: 'p'.repeat(2000) } }),
      /password/,
    );
    expectBadRequest(await client(server.url, token).post('/api/users/invitations', { email: 'not-an-email', role: 'member' }), /email/);
    expectBadRequest(await client(server.url, token).post('/api/users/invitations', { email: 'x@example.com', role: 'superuser' }), /role/);
  });

  it('stores unicode and SQL-looking text literally', async () => {
    const admin = client(server.url, token);
    for (const name of ["'; drop table users; --", '云际 团队 🚀', 'Robert"); DELETE FROM tenants;--', '\u202eevil']) {
      const res = await admin.post('/api/tenants', { name });
      expect(res.status).toBe(201);
      expect(res.body.name).toBe(name);
    }
    const sqlLogin = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: "x'or'1'='1@example.com", password: "' or 1=1 --" },
    });
    expect(sqlLogin.status).toBe(401);
    const tenants = await admin.get('/api/auth/tenants');
    expect(tenants.body.map((m: any) => m.tenant.name)).toContain('云际 团队 🚀');
    // The users table is intact: the admin still logs in.
    await login(server.url);
    expectBadRequest(await admin.post('/api/tenants', { name: '   ' }), /name/);
    expectBadRequest(await admin.post('/api/tenants', { name: 'n'.repeat(101) }), /name/);
  });

  it('refuses path ids that are not positive integers', async () => {
    const admin = client(server.url, token);
    for (const id of ['abc', '-1', '0', '1.5', '99999999999999999999', '9007199254740993', '%00', "1'--", 'null']) {
      for (const [method, path, body] of [
        ['PATCH', `/api/users/${id}`, { role: 'member' }],
        ['DELETE', `/api/users/${id}`, undefined],
        ['DELETE', `/api/keys/${id}`, undefined],
      ] as const) {
        const res = method === 'PATCH' ? await admin.patch(path, body) : await admin.delete(path);
        expect(res.status, `${method} ${path}`).toBe(400);
        expect(res.body.code).toBe('bad_request');
      }
    }
  });

  it('refuses out-of-range paging', async () => {
    const admin = client(server.url, token);
    for (const q of ['page=0', 'page=-5', 'page=abc', 'page_size=0', 'page_size=201', 'page_size=10000']) {
      expectBadRequest(await admin.get(`/api/users?${q}`));
      expectBadRequest(await admin.get(`/api/keys?${q}`));
    }
    const ok = await admin.get('/api/users?page=2&page_size=1&unknown=ignored');
    expect(ok.status).toBe(200);
    expect(ok.body.meta).toMatchObject({ page: 2, page_size: 1 });
  });

  it('answers unknown routes 404 and wrong methods 405 with Allow, in ErrorResponse', async () => {
    const unknown = await call(server.url, 'GET', '/api/nope', { token });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ code: 'not_found', message: 'no route GET /api/nope' });
    for (const [method, path, allow] of [
      ['GET', '/api/auth/login', 'POST'],
      ['DELETE', '/api/tenants', 'POST'],
      ['POST', '/api/auth/session', 'GET'],
      ['PUT', '/api/users/1', 'PATCH'],
    ] as const) {
      const res = await call(server.url, method, path, { token });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.body.code).toBe('method_not_allowed');
      expect(res.headers.get('allow')).toContain(allow);
    }
  });

  it('keeps a sane X-Request-Id and replaces a hostile one', async () => {
    const kept = await call(server.url, 'GET', '/healthz', { headers: { 'x-request-id': 'abc-123.DEF_9' } });
    expect(kept.headers.get('x-request-id')).toBe('abc-123.DEF_9');
    for (const bad of ['x'.repeat(65), 'has space', '<script>', 'a\u00e9']) {
      const res = await call(server.url, 'GET', '/healthz', { headers: { 'x-request-id': encodeURI(bad) === bad ? bad : encodeURI(bad) } });
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});
