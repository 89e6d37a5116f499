import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import { defaultDisplayName, normalizeEmail } from './records.ts';

/** Inserts a user; `passwordHash` null means an invited user who has not chosen a password yet. */
export async function insertUser(
  db: Kysely<Database> | Transaction<Database>,
  email: string,
  passwordHash: string | null,
  displayName?: string,
): Promise<{ id: number; email: string }> {
  const normalized = normalizeEmail(email);
  const now = Date.now();
  return db
    .insertInto('users')
    .values({
      email: normalized,
      display_name: displayName?.trim() || defaultDisplayName(normalized),
      password_hash: passwordHash,
      created_at: now,
      updated_at: now,
      last_login_at: null,
    })
    .returning(['id', 'email'])
    .executeTakeFirstOrThrow();
}

/**
 * Inserts the row that stands for a pending invitee in one tenant, whether or not an account has
 * the email: the id a tenant sees for its pending member is therefore always a fresh one. Its
 * `email` is a placeholder that no login can name (the address is in `invited_email`); accepting
 * the invitation moves its membership to the account and deletes it.
 */
export async function insertInvitee(db: Kysely<Database> | Transaction<Database>, email: string): Promise<{ id: number }> {
  const normalized = normalizeEmail(email);
  const now = Date.now();
  return db
    .insertInto('users')
    .values({
      email: `invitee:${randomBytes(16).toString('hex')}`,
      invited_email: normalized,
      display_name: defaultDisplayName(normalized),
      password_hash: null,
      created_at: now,
      updated_at: now,
      last_login_at: null,
    })
    .returning(['id'])
    .executeTakeFirstOrThrow();
}
