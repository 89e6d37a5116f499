import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, keyClient, login, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
const BOB = { email: 'bob@example.com', password: 'bob-password-1' };

/**
 * Accepting an invitation for an existing account logs in as that account, so only its password or
 * a session of that same user may prove who accepts. An API key (of any role, the account's own
 * included) is not a login: it must never be turned into a session there.
 */
describe.each(kinds)('invitation accept credentials on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  let bobSession: string;
  let bobKeys: string[];
  let target: { id: number };

  const accept = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    call(server.url, 'POST', '/api/auth/invitations/accept', { body, headers });
  const expectNoSession = (res: ApiResponse, what: string) => {
    expect(res.status, what).toBeGreaterThanOrEqual(400);
    expect(res.status, what).toBeLessThan(500);
    expect(typeof res.body?.code, what).toBe('string');
    expect(res.body?.token, what).toBeUndefined();
    expect(res.headers.get('set-cookie'), what).toBeNull();
  };
  const bobInTarget = async () => (await admin.get('/api/users')).body.items.find((i: any) => i.user.email === BOB.email);
  const bobStatusInTarget = async () => (await bobInTarget())?.membership.status;
  /** A fresh invitation for Bob into the tenant the admin's session is in (removing him first if he got in). */
  const inviteBob = async (role = 'viewer'): Promise<string> => {
    const member = await bobInTarget();
    if (member?.membership.status === 'active') expect((await admin.delete(`/api/users/${member.user.id}`)).status).toBe(204);
    const invite = await admin.post('/api/users/invitations', { email: BOB.email, role });
    expect(invite.status).toBe(201);
    return invite.body.invitation_token;
  };

  beforeAll(async () => {
    server = await startServer(kind);
    admin = client(server.url, await login(server.url));
    // Bob is an owner of `default` and of his own tenant, with keys of every role there and an owner key of his own.
    const invite = await admin.post('/api/users/invitations', { email: BOB.email, role: 'owner' });
    const accepted = await accept({ token: invite.body.invitation_token, password: BOB.password });
    expect(accepted.status).toBe(200);
    bobSession = accepted.body.token;
    const bob = client(server.url, bobSession);
    bobKeys = [];
    for (const role of ROLES) bobKeys.push((await bob.post('/api/keys', { name: role, role })).body.key);
    const own = (await bob.post('/api/tenants', { name: 'Bob own' })).body;
    expect((await bob.put('/api/auth/tenant', { tenant_id: own.id })).status).toBe(200);
    const ownerKey = await keyClient(server.url, bob, 'owner');
    bobKeys.push((await ownerKey.get('/api/auth/session')).body.token);
    expect(bobKeys.every((k) => k.startsWith('yk_'))).toBe(true);
    // The admin's tenant Bob is invited into.
    target = (await admin.post('/api/tenants', { name: 'Target' })).body;
    expect((await admin.put('/api/auth/tenant', { tenant_id: target.id })).status).toBe(200);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('an API key of the invitee (any role, any tenant of theirs) never accepts in place of the password, nor yields a session', async () => {
    const token = await inviteBob();
    for (const [i, key] of bobKeys.entries()) {
      expectNoSession(await accept({ token }, { authorization: `Bearer ${key}` }), `bob's key #${i}, no password`);
      expectNoSession(await accept({ token, display_name: 'Bob' }, { authorization: `Bearer ${key}` }), `bob's key #${i}, a display name`);
    }
    // The admin's own key (an owner of Target) proves nothing about Bob either.
    const adminKey = (await admin.post('/api/keys', { name: 'admin-owner', role: 'owner' })).body.key;
    expectNoSession(await accept({ token }, { authorization: `Bearer ${adminKey}` }), "the inviter's owner key");
    expect(await bobStatusInTarget()).toBe('invited');
    // The invitation is still unused: the password accepts it, and the answer is a session.
    const right = await accept({ token, password: BOB.password }, { authorization: `Bearer ${bobKeys[0]}` });
    expect(right.status).toBe(200);
    expect(right.body.token).toMatch(/^ys_/);
    expect(right.body.current_tenant.id).toBe(target.id);
    expect(right.headers.get('set-cookie')).toMatch(/yunji_session=ys_/);
    expect(await bobStatusInTarget()).toBe('active');
    expect((await admin.delete(`/api/users/${right.body.user.id}`)).status).toBe(204);
  });

  it("another user's session never accepts for an existing account; the invitee's own session does", async () => {
    const token = await inviteBob();
    const adminToken = (await admin.get('/api/auth/session')).body.token;
    expectNoSession(await accept({ token }, { authorization: `Bearer ${adminToken}` }), "the inviter's session");
    expectNoSession(await accept({ token }, { cookie: `yunji_session=${adminToken}` }), "the inviter's session cookie");
    expectNoSession(
      await accept({ token, password: 'wrong-password-1' }, { authorization: `Bearer ${adminToken}` }),
      "the inviter's session and a wrong password",
    );
    expect(await bobStatusInTarget()).toBe('invited');

    const own = await accept({ token }, { authorization: `Bearer ${bobSession}` });
    expect(own.status).toBe(200);
    expect(own.body.current_tenant.id).toBe(target.id);
    expect(own.body.user.email).toBe(BOB.email);
    expect(await bobStatusInTarget()).toBe('active');
    expect((await admin.delete(`/api/users/${own.body.user.id}`)).status).toBe(204);
    // The cookie form of Bob's session works the same way.
    const again = await inviteBob();
    const byCookie = await accept({ token: again }, { cookie: `yunji_session=${bobSession}` });
    expect(byCookie.status).toBe(200);
    expect((await admin.delete(`/api/users/${byCookie.body.user.id}`)).status).toBe(204);
  });

  it('hostile credentials on accept are a clear 4xx, never a session', async () => {
    const token = await inviteBob();
    for (const authorization of [
      'Bearer',
      'Bearer yk_garbage',
      'Bearer ys_garbage',
      'Basic Ym9iOnBhc3M=',
      `Bearer yk_${'a'.repeat(5000)}`,
    ]) {
      expectNoSession(await accept({ token }, { authorization }), authorization.slice(0, 30));
    }
    expectNoSession(await accept({ token: 'yi_not-a-token', password: BOB.password }), 'an unknown invitation');
    expectNoSession(await accept({ token: bobKeys[0]!, password: BOB.password }), 'an API key as the invitation token');
    expectNoSession(await accept({ token: bobSession, password: BOB.password }), 'a session as the invitation token');
    expect(await bobStatusInTarget()).toBe('invited');
  });
});
