import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../src/accounts/actor.ts';
import { updateMember } from '../../src/accounts/members.ts';
import { login } from '../../src/accounts/sessions.ts';
import { hashPassword } from '../../src/accounts/secrets.ts';
import { createTenantWithOwner } from '../../src/accounts/tenants.ts';
import { insertUser } from '../../src/accounts/users.ts';
import { AppError } from '../../src/lib/errors.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

describe.each(kinds)('membership changes under concurrency on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('two owners demoting each other at once leave exactly one owner', async () => {
    const { core } = rt;
    const hash = await hashPassword('password-123');
    for (let round = 0; round < 10; round++) {
      const a = await insertUser(core.db, `a${round}@example.com`, hash);
      const b = await insertUser(core.db, `b${round}@example.com`, hash);
      const tenant = await createTenantWithOwner(core.db, `t${round}`, a.id);
      await core.db
        .insertInto('memberships')
        .values({
          tenant_id: tenant.id,
          user_id: b.id,
          role: 'owner',
          status: 'active',
          invited_by: a.id,
          created_at: Date.now(),
          updated_at: Date.now(),
        })
        .execute();
      const actorA = {
        ...(await authenticate(core, (await login(core, a.email, 'password-123', '10.0.0.1')).token)),
        tenantId: tenant.id,
        role: 'owner' as const,
      };
      const actorB = {
        ...(await authenticate(core, (await login(core, b.email, 'password-123', '10.0.0.1')).token)),
        tenantId: tenant.id,
        role: 'owner' as const,
      };

      const outcomes = await Promise.allSettled([
        updateMember(core, actorA, b.id, { role: 'admin' }),
        updateMember(core, actorB, a.id, { role: 'admin' }),
      ]);
      const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason);
      for (const r of refused) expect(r).toBeInstanceOf(AppError);
      const owners = await core.db
        .selectFrom('memberships')
        .select('user_id')
        .where('tenant_id', '=', tenant.id)
        .where('role', '=', 'owner')
        .execute();
      expect(owners).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect((refused[0] as AppError).kind).toBe('conflict');
    }
  });
});
