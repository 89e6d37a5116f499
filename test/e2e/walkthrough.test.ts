import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, client, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

describe.each(kinds)('new user walkthrough on %s', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('bootstrap → login → session → tenant → switch → invite → accept → keys → logout', async () => {
    const anon = client(server.url);

    // Bootstrap made the admin; logging in gives a session in tenant "default" and a cookie.
    const loginRes = await anon.post('/api/auth/login', { email: ADMIN_EMAIL.toUpperCase(), password: ADMIN_PASSWORD });
    expect(loginRes.status).toBe(200);
    const session = loginRes.body;
    expect(session.token).toMatch(/^ys_/);
    expect(session.user.email).toBe(ADMIN_EMAIL);
    expect(session.current_tenant.name).toBe('default');
    expect(session.current_role).toBe('owner');
    expect(session.memberships).toHaveLength(1);
    expect(new Date(session.expires_at).getTime()).toBeGreaterThan(Date.now());
    const cookie = loginRes.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/yunji_session=ys_/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);

    const admin = client(server.url, session.token);
    const me = await admin.get('/api/auth/session');
    expect(me.status).toBe(200);
    expect(me.body.user.id).toBe(session.user.id);

    // The cookie alone authenticates too (the console's way).
    const byCookie = await anon.get('/api/auth/session', { headers: { cookie: cookie.split(';')[0]! } });
    expect(byCookie.status).toBe(200);

    // A new tenant; its creator is owner.
    const created = await admin.post('/api/tenants', { name: 'Research' });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe('Research');
    expect(created.body.project_key).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    const tenants = await admin.get('/api/auth/tenants');
    expect(tenants.body.map((m: any) => [m.tenant.name, m.role, m.status])).toEqual([
      ['default', 'owner', 'active'],
      ['Research', 'owner', 'active'],
    ]);

    // Switch into it.
    const switched = await admin.put('/api/auth/tenant', { tenant_id: created.body.id });
    expect(switched.status).toBe(200);
    expect(switched.body.current_tenant.id).toBe(created.body.id);
    expect((await admin.get('/api/auth/session')).body.current_tenant.name).toBe('Research');

    // Invite a new person as member.
    const invite = await admin.post('/api/users/invitations', { email: 'Ann@Example.com', role: 'member' });
    expect(invite.status).toBe(201);
    expect(invite.body.created_user).toBe(true);
    expect(invite.body.user.email).toBe('ann@example.com');
    expect(invite.body.membership).toMatchObject({ role: 'member', status: 'invited', tenant_id: created.body.id });
    const token = invite.body.invitation_token as string;
    expect(token).toMatch(/^yi_/);

    // Inviting again while pending replaces the token; the old one stops working.
    const again = await admin.post('/api/users/invitations', { email: 'ann@example.com', role: 'viewer' });
    expect(again.status).toBe(201);
    expect(again.body.created_user).toBe(false);
    expect((await anon.post('/api/auth/invitations/accept', { token, password: 'ann-password' })).status).toBe(404);

    // A new account must choose a password.
    const noPassword = await anon.post('/api/auth/invitations/accept', { token: again.body.invitation_token });
    expect(noPassword.status).toBe(400);
    expect(noPassword.body.code).toBe('bad_request');
    const accepted = await anon.post('/api/auth/invitations/accept', {
      token: again.body.invitation_token,
      password: 'ann-password',
      display_name: 'Ann',
    });
    expect(accepted.status).toBe(200);
    expect(accepted.body.current_tenant.id).toBe(created.body.id);
    expect(accepted.body.current_role).toBe('viewer');
    expect(accepted.body.user.display_name).toBe('Ann');
    // Works once.
    const reused = await anon.post('/api/auth/invitations/accept', { token: again.body.invitation_token, password: 'ann-password' });
    expect(reused.status).toBe(409);

    // The invitee logs in; her home tenant is the only one she belongs to.
    const annLogin = await anon.post('/api/auth/login', { email: 'ann@example.com', password: 'ann-password' });
    expect(annLogin.status).toBe(200);
    const ann = client(server.url, annLogin.body.token);
    expect(annLogin.body.current_tenant.id).toBe(created.body.id);
    expect(annLogin.body.memberships).toHaveLength(1);

    // The admin sees her among the members and promotes her to member.
    const members = await admin.get('/api/users');
    expect(members.status).toBe(200);
    expect(members.body.meta).toEqual({ page: 1, page_size: 50, total: 2, total_pages: 1 });
    const annId = annLogin.body.user.id;
    const promoted = await admin.patch(`/api/users/${annId}`, { role: 'member' });
    expect(promoted.status).toBe(200);
    expect(promoted.body.membership.role).toBe('member');

    // Keys: shown once, listed without the secret, usable as a bearer token, revocable.
    const keyRes = await ann.post('/api/keys', { name: 'ci', role: 'viewer' });
    expect(keyRes.status).toBe(201);
    expect(keyRes.body.key).toMatch(/^yk_/);
    expect(keyRes.body.key.startsWith(keyRes.body.key_prefix)).toBe(true);
    const listed = await ann.get('/api/keys');
    expect(listed.body.items).toHaveLength(1);
    expect(listed.body.items[0].key).toBeUndefined();
    const keyClient = client(server.url, keyRes.body.key);
    const keySession = await keyClient.get('/api/auth/session');
    expect(keySession.status).toBe(200);
    expect(keySession.body.current_role).toBe('viewer');
    expect(keySession.body.expires_at).toBeNull();
    // A viewer key cannot write.
    expect((await keyClient.post('/api/keys', { name: 'x', role: 'viewer' })).status).toBe(403);
    // A member cannot make a key above her role.
    expect((await ann.post('/api/keys', { name: 'too-strong', role: 'admin' })).status).toBe(403);
    expect((await ann.delete(`/api/keys/${keyRes.body.id}`)).status).toBe(204);
    expect((await keyClient.get('/api/auth/session')).status).toBe(401);

    // Logout: the token stops working at once, and the cookie is cleared.
    const out = await ann.post('/api/auth/logout');
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie') ?? '').toMatch(/yunji_session=;/);
    const after = await ann.get('/api/auth/session');
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('unauthorized');
    // The admin's session is unaffected.
    expect((await admin.get('/api/auth/session')).status).toBe(200);
  });
});
