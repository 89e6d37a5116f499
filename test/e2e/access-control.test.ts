import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/** Invites `email` into the caller's current tenant with `role`, accepts, and returns the new user's token and id. */
async function addMember(base: string, inviterToken: string, email: string, role: string): Promise<{ token: string; id: number }> {
  const invite = await client(base, inviterToken).post('/api/users/invitations', { email, role });
  if (invite.status !== 201) throw new Error(`invite failed: ${invite.status} ${invite.text}`);
  const accepted = await call(base, 'POST', '/api/auth/invitations/accept', {
    body: { token: invite.body.invitation_token, password: `${email}-pw` },
  });
  if (accepted.status !== 200) throw new Error(`accept failed: ${accepted.status} ${accepted.text}`);
  return { token: accepted.body.token, id: accepted.body.user.id };
}

describe.each(kinds)('access control on %s', (kind) => {
  let server: RunningServer;
  let owner: string;
  beforeAll(async () => {
    server = await startServer(kind);
    owner = await login(server.url);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('refuses missing, malformed, garbage and oversized credentials with 401', async () => {
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer' },
      { authorization: 'Bearer ys_garbage' },
      { authorization: 'Bearer yk_garbage' },
      { authorization: 'Basic YWRtaW46cGFzcw==' },
      { authorization: `Bearer ys_${'a'.repeat(10 * 1024)}` },
      { cookie: 'yunji_session=ys_not-a-session' },
    ];
    for (const headers of cases) {
      const res = await call(server.url, 'GET', '/api/auth/session', { headers });
      expect(res.status, JSON.stringify(headers).slice(0, 60)).toBe(401);
      expect(res.body.code).toBe('unauthorized');
    }
  });

  it('answers a wrong password and an unknown email identically', async () => {
    const wrongPassword = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: 'admin@example.com', password: 'not-it-at-all' },
    });
    const unknownEmail = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: 'nobody@example.com', password: 'not-it-at-all' },
    });
    expect(wrongPassword.status).toBe(401);
    expect(unknownEmail.status).toBe(401);
    expect(wrongPassword.body).toEqual(unknownEmail.body);
  });

  it('stops a revoked session and a revoked key at once', async () => {
    const session = await login(server.url);
    const key = (await client(server.url, owner).post('/api/keys', { name: 'temp', role: 'member' })).body;
    expect((await call(server.url, 'GET', '/api/auth/session', { token: key.key })).status).toBe(200);
    expect((await client(server.url, owner).delete(`/api/keys/${key.id}`)).status).toBe(204);
    expect((await call(server.url, 'GET', '/api/auth/session', { token: key.key })).status).toBe(401);
    expect((await client(server.url, session).post('/api/auth/logout')).status).toBe(204);
    expect((await call(server.url, 'GET', '/api/auth/session', { token: session })).status).toBe(401);
    // An API key is not a session: logout with it is refused, and it keeps working.
    const key2 = (await client(server.url, owner).post('/api/keys', { name: 'k2', role: 'viewer' })).body;
    expect((await call(server.url, 'POST', '/api/auth/logout', { token: key2.key })).status).toBe(400);
    expect((await call(server.url, 'GET', '/api/auth/session', { token: key2.key })).status).toBe(200);
  });

  it('enforces roles: viewers read, members cannot manage people, admins stay below owners', async () => {
    const viewer = await addMember(server.url, owner, 'viewer@example.com', 'viewer');
    const member = await addMember(server.url, owner, 'member@example.com', 'member');
    const admin = await addMember(server.url, owner, 'admin2@example.com', 'admin');
    const ownerId = (await client(server.url, owner).get('/api/auth/session')).body.user.id;

    const v = client(server.url, viewer.token);
    expect((await v.get('/api/users')).status).toBe(200);
    expect((await v.get('/api/keys')).status).toBe(200);
    for (const res of [
      await v.post('/api/keys', { name: 'x', role: 'viewer' }),
      await v.post('/api/users/invitations', { email: 'x@example.com', role: 'viewer' }),
      await v.patch(`/api/users/${member.id}`, { role: 'viewer' }),
      await v.delete(`/api/users/${member.id}`),
    ]) {
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('forbidden');
    }

    const m = client(server.url, member.token);
    expect((await m.post('/api/users/invitations', { email: 'y@example.com', role: 'viewer' })).status).toBe(403);
    expect((await m.patch(`/api/users/${viewer.id}`, { role: 'member' })).status).toBe(403);
    expect((await m.post('/api/keys', { name: 'mine', role: 'member' })).status).toBe(201);
    expect((await m.post('/api/keys', { name: 'too-much', role: 'admin' })).status).toBe(403);

    const a = client(server.url, admin.token);
    expect((await a.post('/api/users/invitations', { email: 'z@example.com', role: 'owner' })).status).toBe(403);
    expect((await a.patch(`/api/users/${member.id}`, { role: 'owner' })).status).toBe(403);
    expect((await a.patch(`/api/users/${ownerId}`, { role: 'member' })).status).toBe(403);
    expect((await a.delete(`/api/users/${ownerId}`)).status).toBe(403);
    expect((await a.patch(`/api/users/${viewer.id}`, { role: 'member' })).status).toBe(200);
    // Inviting an active member again is a conflict.
    expect((await a.post('/api/users/invitations', { email: 'member@example.com', role: 'viewer' })).status).toBe(409);

    // The last owner can be neither demoted, disabled nor removed.
    const o = client(server.url, owner);
    for (const res of [
      await o.patch(`/api/users/${ownerId}`, { role: 'admin' }),
      await o.patch(`/api/users/${ownerId}`, { status: 'disabled' }),
      await o.delete(`/api/users/${ownerId}`),
    ]) {
      expect(res.status).toBe(409);
      expect(res.body.code).toBe('conflict');
    }
    expect((await o.get('/api/auth/session')).body.current_role).toBe('owner');
  });

  it('a disabled member is refused inside the tenant until re-enabled; a removed one loses sessions and keys', async () => {
    const user = await addMember(server.url, owner, 'sometimes@example.com', 'member');
    const key = (await client(server.url, user.token).post('/api/keys', { name: 'theirs', role: 'member' })).body.key as string;
    const o = client(server.url, owner);

    expect((await o.patch(`/api/users/${user.id}`, { status: 'disabled' })).status).toBe(200);
    const refused = await client(server.url, user.token).get('/api/users');
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/disabled/);
    expect((await call(server.url, 'GET', '/api/users', { token: key })).status).toBe(403);
    // They can still see where they stand.
    const session = await client(server.url, user.token).get('/api/auth/session');
    expect(session.status).toBe(200);
    expect(session.body.memberships[0].status).toBe('disabled');

    expect((await o.patch(`/api/users/${user.id}`, { status: 'active' })).status).toBe(200);
    expect((await client(server.url, user.token).get('/api/users')).status).toBe(200);

    expect((await o.delete(`/api/users/${user.id}`)).status).toBe(204);
    expect((await client(server.url, user.token).get('/api/auth/session')).status).toBe(401);
    expect((await call(server.url, 'GET', '/api/auth/session', { token: key })).status).toBe(401);
    expect((await o.get('/api/users')).body.items.map((i: any) => i.user.id)).not.toContain(user.id);
  });

  it('an invitation never opens an existing account without its password', async () => {
    await addMember(server.url, owner, 'existing@example.com', 'member');
    const other = (await client(server.url, owner).post('/api/tenants', { name: 'Second' })).body;
    const o = client(server.url, owner);
    await o.put('/api/auth/tenant', { tenant_id: other.id });
    const invite = (await o.post('/api/users/invitations', { email: 'existing@example.com', role: 'viewer' })).body;
    // New to this tenant; whether an account exists elsewhere is not said (test/security/invite-account-privacy.test.ts).
    expect(invite.created_user).toBe(true);
    const without = await call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token: invite.invitation_token } });
    expect(without.status).toBe(400);
    expect(without.body.token).toBeUndefined();
    const wrong = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.invitation_token, password: 'wrong-password' },
    });
    expect(wrong.status).toBe(401);
    const right = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.invitation_token, password: 'existing@example.com-pw' },
    });
    expect(right.status).toBe(200);
    expect(right.body.current_tenant.id).toBe(other.id);
    await o.put('/api/auth/tenant', { tenant_id: 1 });
  });
});

describe.each(kinds)('expiry and throttling on %s', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_SESSION_TTL: '1', YUNJI_INVITATION_TTL: '1', YUNJI_LOGIN_MAX_FAILURES: '3' } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('an expired session token and an expired invitation are refused', async () => {
    const token = await login(server.url);
    const invite = (await client(server.url, token).post('/api/users/invitations', { email: 'late@example.com', role: 'member' })).body;
    await new Promise((r) => setTimeout(r, 1300));
    const expired = await call(server.url, 'GET', '/api/auth/session', { token });
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/expired/);
    const late = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.invitation_token, password: 'password-123' },
    });
    expect(late.status).toBe(400);
    expect(late.body.message).toMatch(/expired/);
  });

  it('throttles repeated failures for one email, even with the right password, and says when to retry', async () => {
    for (let i = 0; i < 3; i++) {
      expect(
        (await call(server.url, 'POST', '/api/auth/login', { body: { email: 'admin@example.com', password: `wrong-${i}` } })).status,
      ).toBe(401);
    }
    const throttled = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: 'admin@example.com', password: 'admin-password-1' },
    });
    expect(throttled.status).toBe(429);
    expect(throttled.body.code).toBe('rate_limited');
    const retryAfter = Number(throttled.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(900);
    // Another email from the same address is not blocked by this one's failures.
    expect(
      (await call(server.url, 'POST', '/api/auth/login', { body: { email: 'other@example.com', password: 'whatever-1' } })).status,
    ).toBe(401);
  });
});
