import type BetterSqlite3 from 'better-sqlite3';
import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import type PG from 'pg';
import { dialectOf, type DialectName } from './dialect.ts';
import { nameStatement, statementName } from './namedStatements.ts';
import { pgDriver } from './pgDriver.ts';

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

/** PostgreSQL: the pool under the Kysely instance, for `preparedEach` (which reads rows as they arrive). */
const pools = new WeakMap<object, PG.Pool>();

export function usePgPool(db: object, pool: PG.Pool): void {
  pools.set(db, pool);
}

/** A query compiled with a marker for each argument, and which argument each parameter is (-1: a constant of the query). */
interface Template<R> {
  query: CompiledQuery<R>;
  slots: number[];
}

function compileTemplate<DB, A extends unknown[], R>(
  build: (db: Kysely<DB>, ...args: A) => Compilable<R>,
  db: Kysely<DB>,
  arity: number,
): Template<R> {
  const markers = Array.from({ length: arity }, (_, i) => `\u0000arg${i}\u0000`);
  const query = build(db, ...(markers as unknown as A)).compile();
  // A fixed shape: on PostgreSQL it is parsed once per connection.
  if (dialectOf(db) === 'postgres') nameStatement(query.sql);
  return { query, slots: query.parameters.map((p) => markers.indexOf(p as string)) };
}

/** The template's parameters with these arguments in their places. */
function bind(template: Template<unknown>, args: unknown[]): unknown[] {
  return template.query.parameters.map((p, i) => (template.slots[i]! >= 0 ? args[template.slots[i]!] : p));
}

interface Entry<R> extends Template<R> {
  statement?: BetterSqlite3.Statement;
  columns: string[];
}

/**
 * Rows read as arrays and made objects here: better-sqlite3 builds each row object in C++, one
 * property at a time, which costs more than reading the row (docs/DECISIONS.md, "Figures behind code comments").
 */
function rowsOf<R>(statement: BetterSqlite3.Statement, columns: string[], parameters: unknown[]): R[] {
  const arrays = statement.all(...parameters) as unknown[][];
  const rows = new Array<R>(arrays.length);
  for (let i = 0; i < arrays.length; i++) {
    const values = arrays[i]!;
    const row: Record<string, unknown> = {};
    for (let c = 0; c < columns.length; c++) row[columns[c]!] = values[c];
    rows[i] = row as R;
  }
  return rows;
}

/** `build` compiled for `db` (once: kept in `compiled`), with its SQLite statement on the point reader where `db` has one. */
function entryFor<DB, A extends unknown[], R>(
  compiled: WeakMap<Kysely<DB>, Entry<R>>,
  build: (db: Kysely<DB>, ...args: A) => Compilable<R>,
  db: Kysely<DB>,
  arity: number,
): Entry<R> {
  let entry = compiled.get(db);
  if (!entry) {
    const template = compileTemplate(build, db, arity);
    const statement = pointReaders.get(db)?.prepare(template.query.sql).raw(true);
    entry = { ...template, statement, columns: statement?.columns().map((c) => c.name) ?? [] };
    compiled.set(db, entry);
  }
  return entry;
}

export function prepared<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...args: A) => Compilable<R>) {
  const compiled = new WeakMap<Kysely<DB>, Entry<R>>();
  return async (db: Kysely<DB>, ...args: A): Promise<R[]> => {
    const entry = entryFor(compiled, build, db, args.length);
    const parameters = bind(entry, args);
    if (entry.statement) return rowsOf<R>(entry.statement, entry.columns, parameters);
    return (await db.executeQuery<R>({ ...entry.query, parameters })).rows;
  };
}

/**
 * A statement built and compiled once per kind of database, then run with new parameter values on
 * the instance given: the database or one of its transactions (so, unlike `prepared`, it sees and
 * takes part in the caller's transaction). Meant for the writes every upload makes, where Kysely's
 * building and compiling cost more than SQLite takes to run them. `build` must use each argument
 * only as a bound value, as for `prepared`.
 */
export function preparedWrite<DB, A extends unknown[], R>(build: (db: Kysely<DB>, ...args: A) => Compilable<R>) {
  const compiled = new Map<DialectName, Template<R>>();
  return async (db: Kysely<DB>, ...args: A): Promise<QueryResult<R>> => {
    const dialect = dialectOf(db);
    let template = compiled.get(dialect);
    if (!template) compiled.set(dialect, (template = compileTemplate(build, db, args.length)));
    const { query } = template;
    // Plugins see each run as they would a query built anew (the write watcher tells caches before a write).
    db.getExecutor().transformQuery(query.query, query.queryId);
    return db.executeQuery<R>({ ...query, parameters: bind(template, args) });
  };
}

/** One row as the statement's columns in order. */
export type RowValues = unknown[];

/**
 * Like `prepared`, but each row goes to `onRow` as it arrives, as an array of the columns in
 * order, and none is kept. Meant for reads of many rows that become bytes at once (a listing
 * page): rows held until the last one are what young-generation collections find alive, copy and
 * move to the old generation (docs/DECISIONS.md, "Figures behind code comments"). An error thrown by `onRow` stops no query already sent: it rejects once the rows end.
 */
export function preparedEach<DB, A extends unknown[]>(build: (db: Kysely<DB>, ...args: A) => Compilable<unknown>) {
  const compiled = new WeakMap<Kysely<DB>, Entry<unknown>>();
  return async (db: Kysely<DB>, onRow: (row: RowValues) => void, ...args: A): Promise<void> => {
    const entry = entryFor(compiled, build, db, args.length);
    const parameters = bind(entry, args);
    if (entry.statement) {
      for (const row of entry.statement.iterate(...parameters)) onRow(row as RowValues);
      return;
    }
    const pool = pools.get(db);
    if (!pool) throw new Error('preparedEach needs the SQLite point reader or the PostgreSQL pool of this database');
    await eachPgRow(pool, entry.query.sql, parameters, onRow);
  };
}

async function eachPgRow(pool: PG.Pool, text: string, values: unknown[], onRow: (row: RowValues) => void): Promise<void> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let thrown: unknown;
      let failed = false;
      // pg's types have rowMode only on client.query's config; its Query takes it as well.
      const config: PG.QueryArrayConfig = { name: statementName(text), text, values, rowMode: 'array' };
      const query = new (pgDriver().Query)(config as PG.QueryConfig);
      query.on('row', (row: RowValues) => {
        if (failed) return;
        try {
          onRow(row);
        } catch (err) {
          failed = true;
          thrown = err;
        }
      });
      query.on('end', () => (failed ? reject(thrown) : resolve()));
      query.on('error', (err: Error) => {
        // An error with no SQLSTATE is the connection's, not the statement's: that client goes.
        if (!(err as { code?: unknown }).code) broken = err;
        reject(err);
      });
      void client.query(query);
    });
  } finally {
    client.release(broken);
  }
}
