import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../src/accounts/actor.ts';
import { hashPassword, newToken, TOKEN_PREFIX, tokenHash } from '../../src/accounts/secrets.ts';
import { createTenantWithOwner } from '../../src/accounts/tenants.ts';
import { insertUser } from '../../src/accounts/users.ts';
import { AppError } from '../../src/errors.ts';
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
