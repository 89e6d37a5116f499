import type { Kysely } from 'kysely';
import { timeColumn } from '../ddl.ts';

/**
 * The handshake between the sweeper and a write that finds its content stored already (see
 * src/spaces/shardGuard.ts): a sweeper records its intent to remove a shard before it looks
 * whether anything uses it; such a write pins the shard before it looks for an intent.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sweep_intents')
    .addColumn('space_id', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('renewed_at', ...timeColumn())
    .addPrimaryKeyConstraint('sweep_intents_pk', ['space_id', 'hash'])
    .execute();
  await db.schema
    .createTable('shard_pins')
    .addColumn('space_id', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addPrimaryKeyConstraint('shard_pins_pk', ['space_id', 'hash'])
    .execute();
  await db.schema.createIndex('shard_pins_created').on('shard_pins').column('created_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('shard_pins').execute();
  await db.schema.dropTable('sweep_intents').execute();
}
