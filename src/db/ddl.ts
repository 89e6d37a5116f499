import type { ColumnDataType, ColumnDefinitionBuilder, Kysely } from 'kysely';
import { dialectOf } from './dialect.ts';

type ColumnArgs = [ColumnDataType, (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder];

/** An auto-incrementing integer primary key, spelled the way each database wants it. */
export function idColumn(db: Kysely<unknown>): ColumnArgs {
  return dialectOf(db) === 'postgres'
    ? ['bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity()]
    : ['integer', (c) => c.primaryKey().autoIncrement()];
}

/** Epoch milliseconds: `bigint` on PostgreSQL (parsed back to number), `integer` (64-bit) on SQLite. */
export function timeColumn(nullable = false): ColumnArgs {
  return ['bigint', (c) => (nullable ? c : c.notNull())];
}
