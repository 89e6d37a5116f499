import type { Kysely } from 'kysely';

/**
 * User spaces become configurable: sealed credentials, features, and a running count of the bytes
 * their shard store holds. `working_dir` is now relative to the space's root, as the spec has it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('user_spaces').addColumn('credential_sealed', 'text').execute();
  await db.schema
    .alterTable('user_spaces')
    .addColumn('features_json', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema
    .alterTable('user_spaces')
    .addColumn('used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  // Until now every space was a default one, uncapped (null); null now means "keeps no object bytes", 0 "no cap".
  await (db as Kysely<{ user_spaces: { working_dir: string; is_default: number; shard_max_size: number | null } }>)
    .updateTable('user_spaces')
    .set({ working_dir: '', shard_max_size: 0 })
    .where('is_default', '=', 1)
    .execute();
}
