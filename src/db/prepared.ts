import type BetterSqlite3 from 'better-sqlite3';
import type { Compilable, CompiledQuery, Kysely } from 'kysely';

/**
 * A read query built and compiled once per database, then run with new parameter values. Kysely
 * builds and compiles a query tree on every call, which costs more than SQLite takes to answer a
 * point lookup; the per-request authentication reads use this instead. `build` must use each
 * argument only as a bound value (never to choose tables, columns or the query's shape).
 *
 * On SQLite these reads go to a separate read-only connection, synchronously: Kysely serializes
 * everything on its one connection (so a read would wait behind another request's transaction,
 * or worse, run inside it).
 */
const pointReaders = new WeakMap<object, BetterSqlite3.Database>();

export function usePointReader(db: object, reader: BetterSqlite3.Database): void {
  pointReaders.set(db, reader);
}

interface Entry<R> {
  query: CompiledQuery<R>;
  slots: number[];
  statement?: BetterSqlite3.Statement;
}

export function prepared<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...args: A) => Compilable<R>) {
  const compiled = new WeakMap<Kysely<DB>, Entry<R>>();
  return async (db: Kysely<DB>, ...args: A): Promise<R[]> => {
    let entry = compiled.get(db);
    if (!entry) {
      const markers = args.map((_, i) => `\u0000arg${i}\u0000`);
      const query = build(db, ...(markers as unknown as A)).compile();
      entry = { query, slots: query.parameters.map((p) => markers.indexOf(p as string)) };
      entry.statement = pointReaders.get(db)?.prepare(query.sql);
      compiled.set(db, entry);
    }
    const { query, slots, statement } = entry;
    const parameters = query.parameters.map((p, i) => (slots[i]! >= 0 ? args[slots[i]!] : p));
    if (statement) return statement.all(...parameters) as R[];
    return (await db.executeQuery<R>({ ...query, parameters })).rows;
  };
}
