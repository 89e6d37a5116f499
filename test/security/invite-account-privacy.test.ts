import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const DOMAIN = 'example.com';
const EXISTING = 'erin.existing';
const UNKNOWN = 'nora.nobody';

/**
 * What an answer about an invitee says once the values generated for the request (tokens, times)
 * and the invitee's own address are blanked out: everything left must be the same for an email with
 * an account and one without. The invitee's id is kept as its form: `<fresh id>` when it is newer
 * than every user id that existed before the invitations (`idsBefore`), else the id itself, so an
 * account's older id would show.
 */
function comparable(res: ApiResponse, localPart: string, idsBefore: number): unknown {
  const form = (id: unknown) => (typeof id === 'number' && id > idsBefore ? '<fresh id>' : id);
  const blank = (value: unknown, key: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => blank(v, key));
    if (value && typeof value === 'object') {
      const entries = Object.entries(value).map(([k, v]) => [k, blank(v, k)]);
      // The member's id, in `user.id` and `membership.user_id`.
      if (key === 'user') return Object.fromEntries(entries.map(([k, v]) => [k, k === 'id' ? form((value as any).id) : v]));
      return Object.fromEntries(entries);
    }
    if (key === 'user_id') return form(value);
    if (key === 'invitation_token') return '<generated>';
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
  let erinId: number;
  /** The newest user id before the tests' invitations: a fresh email's invitation, made last. */
  let idsBefore: number;

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
    erinId = accepted.body.user.id;
    expect((await client(server.url, erinSession).post('/api/tenants', { name: 'Erin own' })).status).toBe(201);
    expect(accepted.body.user.last_login_at).not.toBeNull();
    // The prober owns a tenant of their own.
    const probe = (await admin.post('/api/tenants', { name: 'Probe' })).body;
    expect((await admin.put('/api/auth/tenant', { tenant_id: probe.id })).status).toBe(200);
    prober = admin;
    const marker = await prober.post('/api/users/invitations', { email: `marker@${DOMAIN}`, role: 'viewer' });
    idsBefore = marker.body.user.id;
    expect(idsBefore).toBeGreaterThan(erinId);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('the invitation answer is the same for an email with an account and one without', async () => {
    const before = Date.now();
    const existing = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const unknown = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'member' });
    expect(existing.status).toBe(201);
    expect(comparable(existing, EXISTING, idsBefore)).toEqual(comparable(unknown, UNKNOWN, idsBefore));
    for (const res of [existing, unknown]) {
      // A pending invitee's id is a fresh one, never the account's.
      expect(res.body.user.id).not.toBe(erinId);
      expect(res.body.user.id).toBeGreaterThan(idsBefore);
      expect(res.body.membership.user_id).toBe(res.body.user.id);
      expect(res.body.user.display_name).not.toBe('Erin Existing');
      expect(res.body.user.last_login_at).toBeNull();
      // Times shown are the invitation's, not the account's.
      expect(Date.parse(res.body.user.created_at)).toBeGreaterThanOrEqual(before);
    }

    // Inviting again while pending: the same again.
    const existingAgain = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'viewer' });
    const unknownAgain = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'viewer' });
    expect(comparable(existingAgain, EXISTING, idsBefore)).toEqual(comparable(unknownAgain, UNKNOWN, idsBefore));
    // Still the same pending member: the same id as the first answer.
    expect(existingAgain.body.user.id).toBe(existing.body.user.id);
    expect(unknownAgain.body.user.id).toBe(unknown.body.user.id);
  });

  it("the tenant's member list and member changes show a pending invitee the same way", async () => {
    const list = (await prober.get('/api/users')).body.items as any[];
    const entry = (local: string) => list.find((i) => i.user.email === `${local}@${DOMAIN}`);
    expect(entry(EXISTING).membership.status).toBe('invited');
    const asResponse = (body: unknown): ApiResponse => ({ status: 200, body, headers: new Headers(), text: '' });
    expect(entry(EXISTING).user.id).not.toBe(erinId);
    expect(comparable(asResponse(entry(EXISTING)), EXISTING, idsBefore)).toEqual(
      comparable(asResponse(entry(UNKNOWN)), UNKNOWN, idsBefore),
    );

    const patched = async (local: string) => prober.patch(`/api/users/${entry(local).user.id}`, { role: 'member' });
    expect(comparable(await patched(EXISTING), EXISTING, idsBefore)).toEqual(comparable(await patched(UNKNOWN), UNKNOWN, idsBefore));
    // An invitee is no account: it cannot be made active without accepting.
    const activate = async (local: string) => prober.patch(`/api/users/${entry(local).user.id}`, { status: 'active' });
    expect(comparable(await activate(EXISTING), EXISTING, idsBefore)).toEqual(comparable(await activate(UNKNOWN), UNKNOWN, idsBefore));

    const removed = async (local: string) => prober.delete(`/api/users/${entry(local).user.id}`);
    const [a, b] = [await removed(EXISTING), await removed(UNKNOWN)];
    expect(a.status).toBe(204);
    expect(comparable(a, EXISTING, idsBefore)).toEqual(comparable(b, UNKNOWN, idsBefore));
    // The removed invitee's id names nobody any more, in this tenant or as Erin's account.
    expect((await prober.patch(`/api/users/${entry(EXISTING).user.id}`, { role: 'member' })).status).toBe(404);
  });

  it('the invitation token alone, without a password, answers the same for both', async () => {
    const existing = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const unknown = await prober.post('/api/users/invitations', { email: `${UNKNOWN}@${DOMAIN}`, role: 'member' });
    const accept = (token: string) => call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token } });
    const a = await accept(existing.body.invitation_token);
    const b = await accept(unknown.body.invitation_token);
    expect(a.status).toBe(400);
    expect(comparable(a, EXISTING, idsBefore)).toEqual(comparable(b, UNKNOWN, idsBefore));
  });

  it('once Erin accepts, she is a member like any other; inviting a member of this tenant stays a 409', async () => {
    const invite = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token },
      token: erinSession,
    });
    expect(accepted.status).toBe(200);
    // Accepted: the tenant now sees Erin's account, under its own id, and no invitee any more.
    expect(accepted.body.user.id).toBe(erinId);
    const list = (await prober.get('/api/users')).body.items as any[];
    const erin = list.filter((i) => i.user.email === `${EXISTING}@${DOMAIN}`);
    expect(erin.map((i) => [i.user.id, i.membership.status, i.user.display_name])).toEqual([[erinId, 'active', 'Erin Existing']]);
    expect((await prober.patch(`/api/users/${invite.body.user.id}`, { role: 'viewer' })).status).toBe(404);
    const again = await prober.post('/api/users/invitations', { email: `${EXISTING}@${DOMAIN}`, role: 'member' });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('conflict');
    // Hostile input: a malformed email or role is a 400 naming the field, whatever accounts exist.
    const bad = await prober.post('/api/users/invitations', { email: `${EXISTING}@`, role: 'member' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/email/);
  });
});
