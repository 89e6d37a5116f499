import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';

/**
 * A pending invitee is a user row of its own (`invited_email` set, `email` a placeholder that is
 * no address), made by the invitation whether or not an account has the email, and merged into the
 * account at acceptance. So the id a tenant sees for a pending member is always a fresh one, and
 * tells nothing of an account (docs/DECISIONS.md, "An invitation answers the same whether an
 * account exists"). The memberships and unused invitations pending before this migration move to
 * such rows; down moves them back to the account with that email (made without a password when
 * there is none, as invitations did before).
 */

/** The `email` of an invitee row: unique, and never an address anyone can log in with. */
function inviteePlaceholder(): string {
  return `invitee:${randomBytes(16).toString('hex')}`;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').addColumn('invited_email', 'text').execute();
  await db.schema.createIndex('users_invited_email').on('users').column('invited_email').execute();

  const pending = await sql<{ id: number; tenant_id: number; user_id: number; created_at: number; email: string; display_name: string }>`
    select m.id, m.tenant_id, m.user_id, m.created_at, u.email, u.display_name
    from memberships m join users u on u.id = m.user_id
    where m.status = 'invited'`.execute(db);
  const now = Date.now();
  for (const m of pending.rows) {
    const local = m.email.split('@')[0] || m.email;
    const { rows } = await sql<{ id: number }>`
      insert into users (email, display_name, password_hash, created_at, updated_at, last_login_at, invited_email)
      values (${inviteePlaceholder()}, ${local}, null, ${Number(m.created_at)}, ${now}, null, ${m.email})
      returning id`.execute(db);
    const invitee = Number(rows[0]!.id);
    await sql`update memberships set user_id = ${invitee} where id = ${m.id}`.execute(db);
    await sql`update invitations set user_id = ${invitee} where tenant_id = ${m.tenant_id} and user_id = ${m.user_id} and accepted_at is null`.execute(
      db,
    );
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const invitees = await sql<{ id: number; invited_email: string; created_at: number }>`
    select id, invited_email, created_at from users where invited_email is not null order by id`.execute(db);
  const now = Date.now();
  for (const p of invitees.rows) {
    let account = (await sql<{ id: number }>`select id from users where email = ${p.invited_email}`.execute(db)).rows[0];
    if (!account) {
      const local = p.invited_email.split('@')[0] || p.invited_email;
      account = (
        await sql<{ id: number }>`
          insert into users (email, display_name, password_hash, created_at, updated_at, last_login_at)
          values (${p.invited_email}, ${local}, null, ${Number(p.created_at)}, ${now}, null)
          returning id`.execute(db)
      ).rows[0]!;
    }
    // A tenant where the account is already a member keeps that membership; the invitee's goes.
    await sql`
      update memberships set user_id = ${account.id}
      where user_id = ${p.id} and tenant_id not in (select tenant_id from memberships where user_id = ${account.id})`.execute(db);
    await sql`update invitations set user_id = ${account.id} where user_id = ${p.id}`.execute(db);
    await sql`delete from users where id = ${p.id}`.execute(db);
  }
  await db.schema.dropIndex('users_invited_email').execute();
  await db.schema.alterTable('users').dropColumn('invited_email').execute();
}
