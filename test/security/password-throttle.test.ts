import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, ADMIN_EMAIL, ADMIN_PASSWORD, type ApiResponse, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const MAX_FAILURES = 4;
const FLOOD = 200;

/** Counts of each status among `responses`, and checks every 429 says when to retry. */
function tally(responses: ApiResponse[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const res of responses) {
    counts[res.status] = (counts[res.status] ?? 0) + 1;
    if (res.status === 429) {
      expect(res.body.code).toBe('rate_limited');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  }
  return counts;
}

async function newAccount(base: string, admin: ReturnType<typeof client>, email: string, password: string): Promise<void> {
  const invite = await admin.post('/api/users/invitations', { email, role: 'member' });
  const accepted = await call(base, 'POST', '/api/auth/invitations/accept', { body: { token: invite.body.invitation_token, password } });
  expect(accepted.status).toBe(200);
}

/**
 * Every password check (login, accepting an invitation as an existing account) counts against one
 * budget per account and one per client address, and an attempt is counted before its password is
 * verified: a parallel flood of guesses gets at most the budget verified, never one per request.
 */
describe.each(kinds)('password throttle on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  let acceptToken: string;

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_LOGIN_MAX_FAILURES: String(MAX_FAILURES), YUNJI_LOGIN_WINDOW: '900' } });
    admin = client(server.url, await login(server.url));
    await newAccount(server.url, admin, 'victim@example.com', 'victim-password-1');
    await newAccount(server.url, admin, 'invitee@example.com', 'invitee-password-1');
    // The invitee is invited into a second tenant: accepting it checks their password.
    const second = (await admin.post('/api/tenants', { name: 'Second' })).body;
    await admin.put('/api/auth/tenant', { tenant_id: second.id });
    acceptToken = (await admin.post('/api/users/invitations', { email: 'invitee@example.com', role: 'viewer' })).body.invitation_token;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it(`${FLOOD} parallel wrong logins for one account get at most ${MAX_FAILURES} verified (401), the rest 429; then the right password waits too`, async () => {
    const responses = await Promise.all(
      Array.from({ length: FLOOD }, (_, i) =>
        call(server.url, 'POST', '/api/auth/login', { body: { email: 'victim@example.com', password: `wrong-guess-${i}` } }),
      ),
    );
    const counts = tally(responses);
    expect(counts[401] ?? 0).toBeGreaterThan(0);
    expect(counts[401] ?? 0).toBeLessThanOrEqual(MAX_FAILURES);
    expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(FLOOD);

    const right = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: 'Victim@Example.com', password: 'victim-password-1' },
    });
    expect(right.status).toBe(429);
    expect(right.body.token).toBeUndefined();
    expect(Number(right.headers.get('retry-after'))).toBeLessThanOrEqual(900);
  });

  it(`${FLOOD} parallel wrong passwords accepting an invitation get at most ${MAX_FAILURES} verified, and the account's login waits too`, async () => {
    const responses = await Promise.all(
      Array.from({ length: FLOOD }, (_, i) =>
        call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token: acceptToken, password: `wrong-guess-${i}` } }),
      ),
    );
    const counts = tally(responses);
    expect(counts[401] ?? 0).toBeGreaterThan(0);
    expect(counts[401] ?? 0).toBeLessThanOrEqual(MAX_FAILURES);
    expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(FLOOD);

    const right = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: acceptToken, password: 'invitee-password-1' },
    });
    expect(right.status).toBe(429);
    expect(right.headers.get('set-cookie')).toBeNull();
    // One budget per account, whichever route checks its password.
    const byLogin = await call(server.url, 'POST', '/api/auth/login', {
      body: { email: 'invitee@example.com', password: 'invitee-password-1' },
    });
    expect(byLogin.status).toBe(429);
    expect((await admin.get('/api/users')).body.items.find((i: any) => i.user.email === 'invitee@example.com').membership.status).toBe(
      'invited',
    );
  });

  it('the floods on those accounts lock out no other account, from the same address', async () => {
    const other = await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(other.status).toBe(200);
    expect(other.body.token).toMatch(/^ys_/);
  });

  it('malformed and hostile logins are a clear 400', async () => {
    for (const body of [
      {},
      { email: 'victim@example.com' },
      { email: 'not-an-email', password: 'x' },
      { email: 'a@example.com', password: 'p'.repeat(5000) },
      [],
    ]) {
      const res = await call(server.url, 'POST', '/api/auth/login', { body });
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(400);
      expect(res.body.code).toBe('bad_request');
    }
  });
});

/** The budget comes back when its window ends. */
describe.each(kinds)('password throttle window on %s', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_LOGIN_MAX_FAILURES: '1', YUNJI_LOGIN_WINDOW: '6' } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('the right password is refused with 429 until the window ends, then accepted', async () => {
    const wrong = await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: 'wrong-password-1' } });
    expect(wrong.status).toBe(401);
    const early = await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(early.status).toBe(429);
    const retryAfter = Number(early.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(6);
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 200));
    expect((await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } })).status).toBe(
      200,
    );
  });
});
