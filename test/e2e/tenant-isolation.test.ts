import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/**
 * Two tenants with nobody in common: the admin's `default`, and `Other`, owned by Bob alone. Every
 * read and write from one side at the other's ids is 404 (never 403: no existence leak), and
 * changes nothing.
 */
describe.each(kinds)('tenant isolation on %s', (kind) => {
  let server: RunningServer;
  let alice: ReturnType<typeof client>;
  let bob: ReturnType<typeof client>;
  let aliceKey: { id: number; key: string };
  let bobKey: { id: number; key: string };
  let bobId: number;
  let aliceId: number;
  let other: { id: number };

  beforeAll(async () => {
    server = await startServer(kind);
    alice = client(server.url, await login(server.url));
    aliceId = (await alice.get('/api/auth/session')).body.user.id;
    // Bob joins default, creates his own tenant, then leaves default.
    const invite = await alice.post('/api/users/invitations', { email: 'bob@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'bob-password' },
    });
    bob = client(server.url, accepted.body.token);
    bobId = accepted.body.user.id;
    other = (await bob.post('/api/tenants', { name: 'Other' })).body;
    expect((await alice.delete(`/api/users/${bobId}`)).status).toBe(204);
    bob = client(server.url, await login(server.url, 'bob@example.com', 'bob-password'));
    expect((await bob.get('/api/auth/session')).body.current_tenant.id).toBe(other.id);
    aliceKey = (await alice.post('/api/keys', { name: 'alice-key', role: 'admin' })).body;
    bobKey = (await bob.post('/api/keys', { name: 'bob-key', role: 'admin' })).body;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const expectNotFound = (res: { status: number; body: any }, what: string) => {
    expect(res.status, what).toBe(404);
    expect(res.body.code, what).toBe('not_found');
  };

  it('every cross-tenant write is 404 and changes nothing', async () => {
    for (const [actor, victimId, victimKey, name] of [
      [alice, bobId, bobKey, 'alice→bob'],
      [bob, aliceId, aliceKey, 'bob→alice'],
      [client(server.url, aliceKey.key), bobId, bobKey, 'alice key→bob'],
    ] as const) {
      expectNotFound(await actor.patch(`/api/users/${victimId}`, { role: 'viewer' }), `${name} PATCH user`);
      expectNotFound(await actor.patch(`/api/users/${victimId}`, { status: 'disabled' }), `${name} disable user`);
      expectNotFound(await actor.delete(`/api/users/${victimId}`), `${name} DELETE user`);
      expectNotFound(await actor.delete(`/api/keys/${victimKey.id}`), `${name} DELETE key`);
    }
    expectNotFound(await alice.put('/api/auth/tenant', { tenant_id: other.id }), 'alice switches into Other');
    expectNotFound(await bob.put('/api/auth/tenant', { tenant_id: 1 }), 'bob switches into default');
    expectNotFound(await alice.put('/api/auth/tenant', { tenant_id: 999999 }), 'a tenant that does not exist');

    // Nothing changed: both keys work with their roles, Bob is still Other's owner.
    const bobSession = await call(server.url, 'GET', '/api/auth/session', { token: bobKey.key });
    expect(bobSession.status).toBe(200);
    expect(bobSession.body.current_role).toBe('admin');
    expect((await bob.get('/api/auth/session')).body.current_role).toBe('owner');
    expect((await call(server.url, 'GET', '/api/auth/session', { token: aliceKey.key })).status).toBe(200);
  });

  it('lists show only the own tenant', async () => {
    const aliceMembers = (await alice.get('/api/users')).body.items.map((i: any) => i.user.email);
    expect(aliceMembers).toEqual(['admin@example.com']);
    const bobMembers = (await bob.get('/api/users')).body.items.map((i: any) => i.user.email);
    expect(bobMembers).toEqual(['bob@example.com']);
    expect((await alice.get('/api/keys')).body.items.map((k: any) => k.name)).toEqual(['alice-key']);
    expect((await bob.get('/api/keys')).body.items.map((k: any) => k.name)).toEqual(['bob-key']);
    const aliceTenants = (await alice.get('/api/auth/tenants')).body.map((m: any) => m.tenant.name);
    expect(aliceTenants).toEqual(['default']);
    expect((await call(server.url, 'GET', '/api/users', { token: bobKey.key })).body.items.map((i: any) => i.user.email)).toEqual([
      'bob@example.com',
    ]);
    // An API key sees only its own tenant, even in the session view.
    const viaKey = await call(server.url, 'GET', '/api/auth/tenants', { token: aliceKey.key });
    expect(viaKey.body.map((m: any) => m.tenant.name)).toEqual(['default']);
  });

  it('inside one tenant, a member sees only their own keys and cannot touch others', async () => {
    const invite = await alice.post('/api/users/invitations', { email: 'carol@example.com', role: 'member' });
    const carol = client(
      server.url,
      (
        await call(server.url, 'POST', '/api/auth/invitations/accept', {
          body: { token: invite.body.invitation_token, password: 'carol-password' },
        })
      ).body.token,
    );
    const carolKey = (await carol.post('/api/keys', { name: 'carol-key', role: 'member' })).body;
    expect((await carol.get('/api/keys')).body.items.map((k: any) => k.name)).toEqual(['carol-key']);
    expectNotFound(await carol.delete(`/api/keys/${aliceKey.id}`), 'member deletes admin key');
    // The admin sees and can revoke every key of the tenant.
    expect((await alice.get('/api/keys')).body.items.map((k: any) => k.name).sort()).toEqual(['alice-key', 'carol-key']);
    expect((await alice.delete(`/api/keys/${carolKey.id}`)).status).toBe(204);
    expect((await call(server.url, 'GET', '/api/auth/session', { token: carolKey.key })).status).toBe(401);
  });
});
