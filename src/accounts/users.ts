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
