import { sql } from 'kysely';
import type { Core } from '../core.ts';
import { AppError } from '../errors.ts';

/**
 * Failed-login throttling, kept in the database so every process of a deployment counts together.
 * A fixed window per key: after `limit` failures inside the window, attempts are refused (429)
 * until the window ends.
 */
export interface ThrottleKey {
  key: string;
  limit: number;
}

export function loginThrottleKeys(core: Core, email: string, ip: string): ThrottleKey[] {
  const perEmail = core.config.loginMaxFailures;
  return [
    { key: `email:${email}`, limit: perEmail },
    { key: `ip:${ip}`, limit: perEmail * 5 },
  ];
}

export async function assertNotThrottled(core: Core, keys: ThrottleKey[]): Promise<void> {
  const now = Date.now();
  const windowMs = core.config.loginWindow * 1000;
  const rows = await core.db
    .selectFrom('auth_throttle')
    .selectAll()
    .where(
      'key',
      'in',
      keys.map((k) => k.key),
    )
    .execute();
  for (const row of rows) {
    const limit = keys.find((k) => k.key === row.key)?.limit ?? Infinity;
    const endsAt = row.window_start + windowMs;
    if (row.failures >= limit && endsAt > now) {
      const retryAfter = Math.max(1, Math.ceil((endsAt - now) / 1000));
      throw new AppError('rate_limited', `too many failed logins; try again in ${retryAfter} s`, undefined, retryAfter);
    }
  }
}

export async function recordFailure(core: Core, keys: ThrottleKey[]): Promise<void> {
  const now = Date.now();
  const expired = now - core.config.loginWindow * 1000;
  // Rows of past windows count for nothing; dropping them here keeps the table as small as the
  // failures of one window, however many addresses a password sprayer tries.
  await core.db.deleteFrom('auth_throttle').where('window_start', '<=', expired).execute();
  for (const { key } of keys) {
    await core.db
      .insertInto('auth_throttle')
      .values({ key, failures: 1, window_start: now })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          failures: sql`case when auth_throttle.window_start <= ${expired} then 1 else auth_throttle.failures + 1 end`,
          window_start: sql`case when auth_throttle.window_start <= ${expired} then ${now} else auth_throttle.window_start end`,
        }),
      )
      .execute();
  }
}

export async function clearFailures(core: Core, key: string): Promise<void> {
  await core.db.deleteFrom('auth_throttle').where('key', '=', key).execute();
}
