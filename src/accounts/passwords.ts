import type { DbCore } from '../db/core.ts';
import { DECOY_PASSWORD_HASH, hashPassword, isWeakerThanCurrent, verifyPassword } from './secrets.ts';
import { passwordAccepted, passwordRefused, reservePasswordAttempt } from './throttle.ts';

/** The account whose password is checked; `undefined` (no such email) or a null hash (no password yet) never match. */
export interface PasswordAccount {
  id: number;
  password_hash: string | null;
}

/**
 * The one way a password is checked (login, accepting an invitation): counted by the throttle before
 * it is verified (429 past the limit), verified against the account's hash, or against a decoy so an
 * unknown account costs as much, and stored again at today's parameters when its hash was weaker.
 */
export async function checkPassword(
  core: DbCore,
  email: string,
  account: PasswordAccount | undefined,
  password: string,
  clientIp: string,
): Promise<boolean> {
  const attempt = await reservePasswordAttempt(core, email, clientIp);
  const stored = account?.password_hash ?? null;
  const matches = await verifyPassword(password, stored ?? DECOY_PASSWORD_HASH);
  if (!matches || !account || stored === null) {
    await passwordRefused(core);
    return false;
  }
  await passwordAccepted(core, attempt);
  if (isWeakerThanCurrent(stored)) {
    const upgraded = await hashPassword(password);
    // Only over the hash just verified: a password changed meanwhile stays changed.
    await core.db
      .updateTable('users')
      .set({ password_hash: upgraded })
      .where('id', '=', account.id)
      .where('password_hash', '=', stored)
      .execute();
  }
  return true;
}
