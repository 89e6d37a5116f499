import type { Migration } from 'kysely';
import * as accounts from './0001_accounts.ts';

/** Every migration, in order. Names never change once released. */
export const migrations: Record<string, Migration> = {
  '0001_accounts': accounts,
};
