import { createRequire } from 'node:module';
import type PG from 'pg';

let loaded: typeof PG | undefined;

/** The PostgreSQL driver, loaded when a PostgreSQL database is first opened: a server on SQLite does not carry it. */
export function pgDriver(): typeof PG {
  if (!loaded) {
    loaded = createRequire(import.meta.url)('pg') as typeof PG;
    // int8 (bigint) columns hold ids and epoch-ms times, all far below 2^53: read them as numbers.
    loaded.types.setTypeParser(20, (v) => Number(v));
  }
  return loaded;
}
