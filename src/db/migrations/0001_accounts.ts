import type { Kysely } from 'kysely';
import { idColumn, timeColumn } from '../ddl.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', ...idColumn(db))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('project_key', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .execute();

  await db.schema
    .createTable('users')
    .addColumn('id', ...idColumn(db))
    .addColumn('email', 'text', (c) => c.notNull().unique())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text')
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .addColumn('last_login_at', ...timeColumn(true))
    .execute();

  await db.schema
    .createTable('memberships')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('invited_by', 'bigint', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', ...timeColumn())
    .addColumn('updated_at', ...timeColumn())
    .addUniqueConstraint('memberships_tenant_user', ['tenant_id', 'user_id'])
    .execute();
  // A user's memberships, already in the order they are listed (no sort per request).
  await db.schema.createIndex('memberships_user').on('memberships').columns(['user_id', 'created_at', 'tenant_id']).execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', ...idColumn(db))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('current_tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('created_at', ...timeColumn())
    .addColumn('expires_at', ...timeColumn())
    .execute();
  await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
  await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('key_prefix', 'text', (c) => c.notNull())
    .addColumn('created_at', ...timeColumn())
    .addColumn('last_used_at', ...timeColumn(true))
    .execute();
  await db.schema.createIndex('api_keys_tenant').on('api_keys').column('tenant_id').execute();

  await db.schema
    .createTable('invitations')
    .addColumn('id', ...idColumn(db))
    .addColumn('tenant_id', 'bigint', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('invited_by', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', ...timeColumn())
    .addColumn('expires_at', ...timeColumn())
    .addColumn('accepted_at', ...timeColumn(true))
    .execute();
  await db.schema.createIndex('invitations_tenant_user').on('invitations').columns(['tenant_id', 'user_id']).execute();

  await db.schema
    .createTable('auth_throttle')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('window_start', ...timeColumn())
    .execute();
}
