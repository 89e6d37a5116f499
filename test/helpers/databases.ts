import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The databases every storage and job test runs on. SQLite always; PostgreSQL when the server at
 * YUNJI_TEST_PG_URL (default: this machine's) answers. Without it the PostgreSQL cases are skipped
 * with a printed reason, unless YUNJI_TEST_REQUIRE_PG=1 (CI), where its absence fails the run.
 */
export type DbKind = 'sqlite' | 'postgres';

export const PG_ADMIN_URL = process.env.YUNJI_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let pgAvailable: Promise<string | undefined> | undefined;

/** undefined when PostgreSQL answers; otherwise why not. */
export function postgresUnavailableReason(): Promise<string | undefined> {
  pgAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
      return undefined;
    } catch (err) {
      return `PostgreSQL at ${PG_ADMIN_URL} is not reachable (${(err as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgAvailable;
}

/** The kinds to run on, printing why PostgreSQL is skipped (or failing, when it is required). */
export async function databaseKinds(): Promise<DbKind[]> {
  const reason = await postgresUnavailableReason();
  if (!reason) return ['sqlite', 'postgres'];
  if (process.env.YUNJI_TEST_REQUIRE_PG === '1') throw new Error(`YUNJI_TEST_REQUIRE_PG=1 but ${reason}`);
  console.warn(`SKIPPING PostgreSQL tests: ${reason}`);
  return ['sqlite'];
}

/** A fresh, empty PostgreSQL database; `drop` removes it (ending its connections first). */
export async function createPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `yunji_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
