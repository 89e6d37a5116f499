import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const DOMAIN = 'example.com';
const EXISTING = 'erin.existing';
const UNKNOWN = 'nora.nobody';

/**
 * What an answer about an invitee says once the values generated for the request (ids, tokens,
 * times) and the invitee's own address are blanked out: everything left must be the same for an
 * email with an account and one without.
 */
function comparable(res: ApiResponse, localPart: string): unknown {
  const blank = (value: unknown, key: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => blank(v, key));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, blank(v, k)]));
    if (['id', 'user_id', 'invitation_token'].includes(key)) return '<generated>';
    if (typeof value === 'string' && /_at$/.test(key)) return '<time>';
    return value;
  };
  return JSON.parse(JSON.stringify({ status: res.status, body: blank(res.body, '') }).replaceAll(localPart, '<invitee>'));
}

/**
 * A tenant's admin is anyone who created a tenant, so inviting an email must not tell them whether
 * an account exists for it, nor anything about that account (its name, age, logins, other tenants).
 */
describe.each(kinds)('invite account privacy on %s', (kind) => {
  let server: RunningServer;
  let prober: ReturnType<typeof client>;
  let erinSession: string;

  beforeAll(async () => {
    server = await startServer(kind);
    const admin = client(server.url, await login(server.url));
    // Erin has an account in `default`, a display name of her own, logins, and a tenant of her own.
    const invite = await admin.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'erin-password-1', display_name: 'Erin Existing' },
    });
    expect(accepted.status).toBe(200);
    erinSession = accepted.body.token;
    expect((await client(server.url, erinSession).post('/api/tenants', { name: 'Erin own' })).status).toBe(201);
    expect(accepted.body.user.last_login_at).not.toBeNull();
    // The prober owns a tenant of their own.
    const probe = (await admin.post('/api/tenants', { name: 'Probe' })).body;
    expect((await admin.put('/api/auth/tenant', { tenant_id: probe.id })).status).toBe(200);
    prober = admin;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('the invitation answer is the same for an email with an account and one without', async () => {
    const before = Date.now();
    const existing = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const unknown = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'member' });
    expect(existing.status).toBe(201);
    expect(comparable(existing, EXISTING)).toEqual(comparable(unknown, UNKNOWN));
    for (const res of [existing, unknown]) {
      expect(res.body.user.display_name).not.toBe('Erin Existing');
      expect(res.body.user.last_login_at).toBeNull();
      // Times shown are the invitation's, not the account's.
      expect(Date.parse(res.body.user.created_at)).toBeGreaterThanOrEqual(before);
    }

    // Inviting again while pending: the same again.
    const existingAgain = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'viewer' });
    const unknownAgain = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'viewer' });
    expect(comparable(existingAgain, EXISTING)).toEqual(comparable(unknownAgain, UNKNOWN));
  });

  it("the tenant's member list and member changes show a pending invitee the same way", async () => {
    const list = (await prober.get('/api/users')).body.items as any[];
    const entry = (local: string) => list.find((i) => i.user.email === `${local}@${DOMAIN}`);
    expect(entry(EXISTING).membership.status).toBe('invited');
    const asResponse = (body: unknown): ApiResponse => ({ status: 200, body, headers: new Headers(), text: '' });
    expect(comparable(asResponse(entry(EXISTING)), EXISTING)).toEqual(comparable(asResponse(entry(UNKNOWN)), UNKNOWN));

    const patched = async (local: string) => prober.patch(`/api/users/${entry(local).user.id}`, { role: 'member' });
    expect(comparable(await patched(EXISTING), EXISTING)).toEqual(comparable(await patched(UNKNOWN), UNKNOWN));
  });

  it('the invitation token alone, without a password, answers the same for both', async () => {
    const existing = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const unknown = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'member' });
    const accept = (token: string) => call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token } });
    const a = await accept(existing.body.invitation_token);
    const b = await accept(unknown.body.invitation_token);
    expect(a.status).toBe(400);
    expect(comparable(a, EXISTING)).toEqual(comparable(b, UNKNOWN));
  });

  it('once Erin accepts, she is a member like any other; inviting a member of this tenant stays a 409', async () => {
    const invite = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token: invite.body.invitation_token }, token: erinSession });
    expect(accepted.status).toBe(200);
    const again = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('conflict');
    // Hostile input: a malformed email or role is a 400 naming the field, whatever accounts exist.
    const bad = await prober.post('/api/users/invitations', { email: `${EXISTING}@`, role: 'member' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/email/);
  });
});
