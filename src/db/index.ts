import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type MigrationProvider } from 'kysely';
import type { DialectName } from './dialect.ts';
import { migrations } from './migrations/index.ts';
import { withNamedStatements } from './namedStatements.ts';
import { pgDriver } from './pgDriver.ts';
import { observeDatabase, WriteWatcher } from './observe.ts';
import { usePgPool, usePointReader } from './prepared.ts';
import type { Database } from './schema.ts';

export type { Database } from './schema.ts';
export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  dialect: DialectName;
  /** Where the data lives, for logs: a file path or a URL without its password. */
  location: string;
  close(): Promise<void>;
}

export function resolveDatabaseUrl(databaseUrl: string, dataDir: string): { dialect: DialectName; target: string } {
  if (databaseUrl === '') return { dialect: 'sqlite', target: resolve(dataDir, 'yunji.db') };
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) return { dialect: 'postgres', target: databaseUrl };
  if (databaseUrl.startsWith('sqlite:')) return { dialect: 'sqlite', target: resolve(databaseUrl.slice('sqlite:'.length)) };
  throw new Error(`YUNJI_DATABASE_URL: expected postgres://…, postgresql://… or sqlite:<path> (got '${databaseUrl}')`);
}

/**
 * better-sqlite3 compiles a statement on every `prepare`; Kysely prepares each query it runs. Reusing
 * compiled statements by SQL text removes that cost from every request. A statement still being
 * iterated (a streamed query) is busy, so a fresh one is prepared for that call.
 */
function withStatementCache(sqlite: BetterSqlite3.Database): BetterSqlite3.Database {
  const cache = new Map<string, BetterSqlite3.Statement>();
  const prepare = (sql: string): BetterSqlite3.Statement => {
    const cached = cache.get(sql);
    if (cached && !cached.busy) return cached;
    const stmt = sqlite.prepare(sql);
    if (!cached) {
      if (cache.size >= 500) cache.delete(cache.keys().next().value as string);
      cache.set(sql, stmt);
    }
    return stmt;
  };
  return new Proxy(sqlite, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return prepare;
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export function openDatabase(databaseUrl: string, dataDir: string): DatabaseHandle {
  const { dialect, target } = resolveDatabaseUrl(databaseUrl, dataDir);
  if (dialect === 'postgres') {
    const pool = new (pgDriver().Pool)({ connectionString: target, max: 10 });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on('error', () => {});
    const watcher = new WriteWatcher();
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: withNamedStatements(pool) }), plugins: [watcher] });
    observeDatabase(db, watcher);
    usePgPool(db, pool);
    const url = new URL(target);
    url.password = '';
    return { db, dialect, location: url.toString(), close: () => db.destroy() };
  }
  mkdirSync(dirname(target), { recursive: true });
  const sqlite = new BetterSqlite3(target);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const watcher = new WriteWatcher();
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }), plugins: [watcher] });
  observeDatabase(db, watcher, sqlite);
  // A second, read-only connection for the per-request point reads (see prepared.ts). Under WAL it
  // reads the last committed state, never a transaction still open on the writer connection.
  const reader = new BetterSqlite3(target, { readonly: true });
  reader.pragma('busy_timeout = 5000');
  usePointReader(db, reader);
  return {
    db,
    dialect,
    location: target,
    close: async () => {
      await db.destroy();
      reader.close();
    },
  };
}

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Brings the schema up to date; safe to run from several processes at once (Kysely takes a lock). */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Reachability check for /readyz. */
export async function pingDatabase(db: Db): Promise<void> {
  await db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
}
