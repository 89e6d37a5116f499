import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type PG from 'pg';

/**
 * PostgreSQL parses and plans an unnamed statement on every run: for the statements every request
 * makes (the authentication reads, an upload's writes, a listing page) that costs more than running
 * them (docs/DECISIONS.md, "Figures behind code comments"). Statements whose SQL text is
 * registered here run as named prepared statements instead, parsed once per connection. Only
 * statements of a fixed shape are registered (`prepared`, `preparedWrite`): each one is a plan kept
 * by every connection, so queries built with varying text (lists of values) must stay unnamed.
 */
const names = new Map<string, string>();

export function nameStatement(sql: string): void {
  if (!names.has(sql)) names.set(sql, `yunji_${names.size + 1}`);
}

/** The name a registered statement runs under (undefined for one not registered). */
export const statementName = (sql: string): string | undefined => names.get(sql);

/** The pool as Kysely sees it, with each client running registered statements by name. */
export function withNamedStatements(pool: PG.Pool): PostgresPool {
  return {
    connect: async () => {
      const client = await pool.connect();
      const wrapped: PostgresPoolClient = {
        query: ((sqlOrCursor: unknown, parameters?: readonly unknown[]) => {
          const name = typeof sqlOrCursor === 'string' ? names.get(sqlOrCursor) : undefined;
          if (name) return client.query({ name, text: sqlOrCursor as string, values: parameters as unknown[] });
          return client.query(sqlOrCursor as string, parameters as unknown[]);
        }) as unknown as PostgresPoolClient['query'],
        release: () => client.release(),
      };
      return wrapped;
    },
    end: () => pool.end(),
  };
}
