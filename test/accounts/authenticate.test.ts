import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../src/accounts/actor.ts';
import { hashPassword, newToken, TOKEN_PREFIX, tokenHash } from '../../src/accounts/secrets.ts';
import { createTenantWithOwner } from '../../src/accounts/tenants.ts';
import { insertUser } from '../../src/accounts/users.ts';
import { AppError } from '../../src/lib/errors.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

describe.each(kinds)('authenticate on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('sees committed sessions only: never one still inside another request’s transaction', async () => {
    const { core } = rt;
    const user = await insertUser(core.db, 'reader@example.com', await hashPassword('password-123'));
    const tenant = await createTenantWithOwner(core.db, 'reader', user.id);
    const token = newToken(TOKEN_PREFIX.session);
    const now = Date.now();

    await core.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('sessions')
        .values({ token_hash: tokenHash(token), user_id: user.id, current_tenant_id: tenant.id, created_at: now, expires_at: now + 60_000 })
        .execute();
      // Another request authenticating now must not see the uncommitted row (nor wait for it).
      const during = await authenticate(core, token).catch((e: unknown) => e);
      expect(during).toBeInstanceOf(AppError);
      expect((during as AppError).kind).toBe('unauthorized');
    });

    const after = await authenticate(core, token);
    expect(after).toMatchObject({ kind: 'session', userId: user.id, tenantId: tenant.id, role: 'owner', membershipStatus: 'active' });

    // A revocation is visible to the very next request.
    await core.db.deleteFrom('sessions').where('token_hash', '=', tokenHash(token)).execute();
    await expect(authenticate(core, token)).rejects.toMatchObject({ kind: 'unauthorized' });
  });
});

describe('the credential cache (SQLite)', () => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime('sqlite', { YUNJI_AUTH_CACHE_TTL: '300' });
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  async function sessionFor(email: string) {
    const { core } = rt;
    const user = await insertUser(core.db, email, await hashPassword('password-123'));
    const tenant = await createTenantWithOwner(core.db, email, user.id);
    const token = newToken(TOKEN_PREFIX.session);
    const now = Date.now();
    await core.db
      .insertInto('sessions')
      .values({ token_hash: tokenHash(token), user_id: user.id, current_tenant_id: tenant.id, created_at: now, expires_at: now + 60_000 })
      .execute();
    return { user, tenant, token };
  }

  it('forgets a token whose revocation is still uncommitted, and refuses it once committed', async () => {
    const { core } = rt;
    const { token } = await sessionFor('race@example.com');
    await authenticate(core, token); // now cached
    await core.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('sessions').where('token_hash', '=', tokenHash(token)).execute();
      // Readers still see the committed row; that answer must not be kept.
      expect((await authenticate(core, token)).kind).toBe('session');
    });
    await expect(authenticate(core, token)).rejects.toMatchObject({ kind: 'unauthorized' });
  });

  it("applies this process's role changes at once", async () => {
    const { core } = rt;
    const { user, tenant, token } = await sessionFor('demoted@example.com');
    expect((await authenticate(core, token)).role).toBe('owner');
    await core.db
      .updateTable('memberships')
      .set({ role: 'viewer' })
      .where('user_id', '=', user.id)
      .where('tenant_id', '=', tenant.id)
      .execute();
    expect((await authenticate(core, token)).role).toBe('viewer');
  });

  it("sees another process's revocation within the TTL", async () => {
    const { core, database } = rt;
    const { token } = await sessionFor('elsewhere@example.com');
    await authenticate(core, token);
    // Another process: its own connection, which this process's write watcher cannot see.
    const other = new BetterSqlite3(database.location);
    other.prepare('delete from sessions where token_hash = ?').run(tokenHash(token));
    other.close();
    expect((await authenticate(core, token)).kind).toBe('session'); // still remembered…
    await new Promise((r) => setTimeout(r, 350));
    await expect(authenticate(core, token)).rejects.toMatchObject({ kind: 'unauthorized' }); // …but not past the TTL
  });
});
