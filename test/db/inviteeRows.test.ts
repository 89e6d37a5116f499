import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../src/db/migrations/index.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

type Member = { tenant_id: number; user_id: number; status: string };

/**
 * 0017 gives every pending member a row of its own (an invitee), so the id a tenant sees for it is
 * never an account's; invitations made before it move to such rows, and back on the way down.
 */
describe.each(kinds)('the invitee rows migration on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let migrator: Migrator;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
    migrator = new Migrator({ db: rt.core.db, provider: { getMigrations: async () => migrations } });
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  it('moves the pending members of before to invitee rows, and back', async () => {
    const db = rt.core.db;
    const down = await migrator.migrateTo('0016_bounded_jobs');
    expect(down.error).toBeUndefined();
    expect(down.results?.map((r) => r.migrationName).at(-1)).toBe('0017_invitee_rows');

    // As invitations left things before: the pending membership points at the account itself
    // (an existing one, or one made without a password for a new email).
    const now = Date.now();
    const one = <T>(q: ReturnType<typeof sql<T>>) => q.execute(db).then((r) => r.rows[0]!);
    const tenant = (
      await one(
        sql<{
          id: number;
        }>`insert into tenants (name, project_key, created_at, updated_at) values ('mig', 'pk-invitee-mig', ${now}, ${now}) returning id`,
      )
    ).id;
    const user = async (email: string, hash: string | null) =>
      Number(
        (
          await one(
            sql<{
              id: number;
            }>`insert into users (email, display_name, password_hash, created_at, updated_at, last_login_at) values (${email}, 'x', ${hash}, ${now}, ${now}, null) returning id`,
          )
        ).id,
      );
    const erin = await user('erin.mig@example.com', 'scrypt$stored');
    const nora = await user('nora.mig@example.com', null);
    const admin = await user('admin.mig@example.com', 'scrypt$stored');
    for (const [id, status] of [
      [admin, 'active'],
      [erin, 'invited'],
      [nora, 'invited'],
    ] as const) {
      await sql`insert into memberships (tenant_id, user_id, role, status, invited_by, created_at, updated_at) values (${tenant}, ${id}, 'member', ${status}, null, ${now}, ${now})`.execute(
        db,
      );
      if (status === 'invited') {
        await sql`insert into invitations (tenant_id, user_id, role, token_hash, invited_by, created_at, expires_at, accepted_at)
          values (${tenant}, ${id}, 'member', ${`hash-${id}`}, ${admin}, ${now}, ${now + 60_000}, null)`.execute(db);
      }
    }

    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const members = async () =>
      (
        await sql<Member & { email: string; invited_email: string | null; invitation_user: number | null }>`
          select m.tenant_id, m.user_id, m.status, u.email, u.invited_email,
            (select i.user_id from invitations i where i.tenant_id = m.tenant_id and i.user_id = m.user_id) as invitation_user
          from memberships m join users u on u.id = m.user_id where m.tenant_id = ${tenant} order by m.id`.execute(db)
      ).rows.map((r) => ({
        ...r,
        user_id: Number(r.user_id),
        invitation_user: r.invitation_user === null ? null : Number(r.invitation_user),
      }));
    const after = await members();
    expect(after[0]).toMatchObject({ user_id: admin, status: 'active', invited_email: null });
    for (const [row, email] of [
      [after[1]!, 'erin.mig@example.com'],
      [after[2]!, 'nora.mig@example.com'],
    ] as const) {
      expect(row.status).toBe('invited');
      expect(row.invited_email).toBe(email);
      expect(row.email).toMatch(/^invitee:[0-9a-f]{32}$/);
      expect(row.user_id).toBeGreaterThan(admin);
      expect(row.invitation_user).toBe(row.user_id);
    }

    // Invited after the migration, an email without any account: down makes the account (no password).
    const zed = Number(
      (
        await one(sql<{
          id: number;
        }>`insert into users (email, display_name, password_hash, created_at, updated_at, last_login_at, invited_email)
      values ('invitee:zed', 'zed', null, ${now}, ${now}, null, 'zed.mig@example.com') returning id`)
      ).id,
    );
    await sql`insert into memberships (tenant_id, user_id, role, status, invited_by, created_at, updated_at) values (${tenant}, ${zed}, 'viewer', 'invited', ${admin}, ${now}, ${now})`.execute(
      db,
    );

    expect((await migrator.migrateTo('0016_bounded_jobs')).error).toBeUndefined();
    const zedAccount = await one(
      sql<{ id: number; password_hash: string | null }>`select id, password_hash from users where email = 'zed.mig@example.com'`,
    );
    expect(zedAccount.password_hash).toBeNull();
    const back = (
      await sql<Member & { invitation_user: number | null }>`
        select m.tenant_id, m.user_id, m.status,
          (select i.user_id from invitations i where i.tenant_id = m.tenant_id and i.user_id = m.user_id) as invitation_user
        from memberships m where m.tenant_id = ${tenant} order by m.id`.execute(db)
    ).rows.map((r) => [Number(r.user_id), r.status, r.invitation_user === null ? null : Number(r.invitation_user)]);
    expect(back).toEqual([
      [admin, 'active', null],
      [erin, 'invited', erin],
      [nora, 'invited', nora],
      [Number(zedAccount.id), 'invited', null],
    ]);
    // No invitee row is left behind.
    expect(Number((await one(sql<{ n: number }>`select count(*) as n from users where email like 'invitee:%'`)).n)).toBe(0);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
  });
});
