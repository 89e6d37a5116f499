import { sql } from 'kysely';
import type { DbCore } from '../db/core.ts';
import { AppError } from '../lib/errors.ts';

/**
 * Throttling of password checks, kept in the database so every process of a deployment counts
 * together. A fixed window per key (the account's email, the client address): an attempt is counted
 * before its password is verified, in one atomic upsert, so parallel guesses cannot outrun the count;
 * past the key's limit inside the window, attempts are refused (429) unverified until the window
 * ends. A correct password gives its attempt back and clears the account's count.
 */
interface ThrottleKey {
  key: string;
  limit: number;
}

/** The attempts one password check holds, to give back once the password proved right. */
export interface PasswordAttempt {
  account: string;
  held: { key: string; windowStart: number }[];
}

function passwordKeys(core: DbCore, email: string, clientIp: string): ThrottleKey[] {
  const perAccount = core.config.loginMaxFailures;
  return [
    { key: `email:${email}`, limit: perAccount },
    { key: `ip:${clientIp}`, limit: perAccount * 5 },
  ];
}

/** Counts an attempt at `email`'s password from `clientIp`, or throws 429 (counting nothing) when either is over its limit. */
export async function reservePasswordAttempt(core: DbCore, email: string, clientIp: string): Promise<PasswordAttempt> {
  const now = Date.now();
  const windowMs = core.config.loginWindow * 1000;
  const expired = now - windowMs;
  const attempt: PasswordAttempt = { account: `email:${email}`, held: [] };
  for (const { key, limit } of passwordKeys(core, email, clientIp)) {
    const row = await core.db
      .insertInto('auth_throttle')
      .values({ key, failures: 1, window_start: now })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          failures: sql`case when auth_throttle.window_start <= ${expired} then 1 else auth_throttle.failures + 1 end`,
          window_start: sql`case when auth_throttle.window_start <= ${expired} then ${now} else auth_throttle.window_start end`,
        }),
      )
      .returning(['failures', 'window_start'])
      .executeTakeFirstOrThrow();
    attempt.held.push({ key, windowStart: Number(row.window_start) });
    if (Number(row.failures) > limit) {
      // Refused attempts are not verified, so they count for nothing: a flood at one account
      // must not use up its address's budget for every other account.
      await giveBack(core, attempt.held);
      const retryAfter = Math.max(1, Math.ceil((Number(row.window_start) + windowMs - now) / 1000));
      throw new AppError('rate_limited', `too many failed password attempts; try again in ${retryAfter} s`, undefined, retryAfter);
    }
  }
  return attempt;
}

/** The password was right: the account's count starts again, and the address gets its attempt back. */
export async function passwordAccepted(core: DbCore, attempt: PasswordAttempt): Promise<void> {
  await core.db.deleteFrom('auth_throttle').where('key', '=', attempt.account).execute();
  await giveBack(
    core,
    attempt.held.filter((h) => h.key !== attempt.account),
  );
}

/** The password was wrong: the attempt stays counted. Rows of past windows count for nothing; dropping them here keeps the table as small as one window's failures. */
export async function passwordRefused(core: DbCore): Promise<void> {
  await core.db
    .deleteFrom('auth_throttle')
    .where('window_start', '<=', Date.now() - core.config.loginWindow * 1000)
    .execute();
}

async function giveBack(core: DbCore, held: PasswordAttempt['held']): Promise<void> {
  for (const { key, windowStart } of held) {
    await core.db
      .updateTable('auth_throttle')
      .set({ failures: sql`auth_throttle.failures - 1` })
      .where('key', '=', key)
      .where('window_start', '=', windowStart)
      .where('failures', '>', 0)
      .execute();
  }
}
