import { randomBytes, scryptSync } from 'node:crypto';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, ADMIN_EMAIL, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const CURRENT_N = 131072;

/** Runs one statement on the database the server uses, as an operator (or an older install) would. */
async function query(server: RunningServer, sqlText: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  if (server.kind === 'sqlite') {
    const db = new BetterSqlite3(join(server.dataDir, 'yunji.db'));
    try {
      const statement = db.prepare(sqlText.replace(/\$\d+/g, '?'));
      if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
      statement.run(...params);
      return [];
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: server.databaseUrl });
  await c.connect();
  try {
    return (await c.query(sqlText, params)).rows;
  } finally {
    await c.end();
  }
}

const storedHash = async (server: RunningServer, email: string) =>
  (await query(server, 'select password_hash from users where email = $1', [email]))[0]!.password_hash as string;

/** A hash as the previous release wrote it: scrypt N=2^14, r=8, p=1. */
function legacyHash(password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, 32, { N: 16384, r: 8, p: 1 });
  return ['scrypt', 16384, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$');
}

const scryptN = (hash: string) => Number(hash.split('$')[1]);

/**
 * Passwords are hashed at current guidance (scrypt N=2^17), and hashes an older install wrote are
 * upgraded at the next successful password check, never at a failed one.
 */
describe.each(kinds)('password hash strength on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;

  beforeAll(async () => {
    server = await startServer(kind);
    admin = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('new accounts and the bootstrap admin are stored at N=2^17', async () => {
    const invite = await admin.post('/api/users/invitations', { email: 'fresh@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'fresh-password-1' },
    });
    expect(accepted.status).toBe(200);
    for (const email of ['fresh@example.com', ADMIN_EMAIL]) {
      const hash = await storedHash(server, email);
      expect(hash).toMatch(/^scrypt\$\d+\$8\$1\$[\w-]+\$[\w-]+$/);
      expect(scryptN(hash), email).toBe(CURRENT_N);
    }
  });

  it('an N=2^14 hash still logs in, and is then stored at N=2^17; a wrong password upgrades nothing', async () => {
    const old = legacyHash('fresh-password-1');
    await query(server, 'update users set password_hash = $1 where email = $2', [old, 'fresh@example.com']);

    const wrong = await call(server.url, 'POST', '/api/auth/login', { body: { email: 'fresh@example.com', password: 'not-the-password' } });
    expect(wrong.status).toBe(401);
    expect(await storedHash(server, 'fresh@example.com')).toBe(old);

    expect(
      (await call(server.url, 'POST', '/api/auth/login', { body: { email: 'fresh@example.com', password: 'fresh-password-1' } })).status,
    ).toBe(200);
    const upgraded = await storedHash(server, 'fresh@example.com');
    expect(upgraded).not.toBe(old);
    expect(scryptN(upgraded)).toBe(CURRENT_N);
    // The upgraded hash is the same password.
    expect(
      (await call(server.url, 'POST', '/api/auth/login', { body: { email: 'fresh@example.com', password: 'fresh-password-1' } })).status,
    ).toBe(200);
  });

  it('accepting an invitation with the password of an account with an N=2^14 hash upgrades it too', async () => {
    const old = legacyHash('fresh-password-1');
    await query(server, 'update users set password_hash = $1 where email = $2', [old, 'fresh@example.com']);
    const other = (await admin.post('/api/tenants', { name: 'Other' })).body;
    await admin.put('/api/auth/tenant', { tenant_id: other.id });
    const token = (await admin.post('/api/users/invitations', { email: 'fresh@example.com', role: 'viewer' })).body.invitation_token;

    const wrong = await call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token, password: 'not-the-password' } });
    expect(wrong.status).toBe(401);
    expect(await storedHash(server, 'fresh@example.com')).toBe(old);
    const right = await call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token, password: 'fresh-password-1' } });
    expect(right.status).toBe(200);
    expect(scryptN(await storedHash(server, 'fresh@example.com'))).toBe(CURRENT_N);
  });

  it('a stored hash that is not a scrypt hash of ours never logs in', async () => {
    await query(server, 'update users set password_hash = $1 where email = $2', ['scrypt$1048576000$8$1$AAAA$AAAA', 'fresh@example.com']);
    const res = await call(server.url, 'POST', '/api/auth/login', { body: { email: 'fresh@example.com', password: 'fresh-password-1' } });
    expect(res.status).toBe(401);
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
  });
});
