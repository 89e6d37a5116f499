import { Type, type Static } from '@sinclair/typebox';
import type { Selectable } from 'kysely';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { isUniqueViolation } from '../db/errors.ts';
import type { SyncSourcesTable } from '../db/schema.ts';
import { badRequest, conflict, notFound } from '../lib/errors.ts';
import { checkOutboundUrl, outboundPolicy } from '../lib/outbound.ts';
import { StringEnum } from '../lib/schema.ts';
import { checkLocalRoot, claimLocalRoot } from '../spaces/roots.ts';
import { checkSpacePath } from '../spaces/spacePaths.ts';
import { checkStorage } from '../spaces/storageConfig.ts';
import { ownPackage } from '../storage/objects.ts';
import { iso } from '../lib/time.ts';
import { schemaProblem } from '../lib/validation.ts';

/**
 * External data sources (`/api/sync/sources`): where a tenant's source syncs read from, and the
 * package they fill. Secrets (an S3 secret key, manifest request headers) are sealed apart from
 * the rest of the settings and never shown again.
 */
export const SOURCE_TYPES = ['http_manifest', 's3', 'local', 'yunji'] as const;
export type SourceType = (typeof SOURCE_TYPES)[number];
const MASK = '********';
const strict = { additionalProperties: false } as const;

const LocalConfig = Type.Object(
  { path: Type.String({ minLength: 1, maxLength: 4096, description: 'Absolute; inside YUNJI_LOCAL_ROOTS' }) },
  strict,
);
const S3Config = Type.Object(
  {
    endpoint: Type.Optional(Type.String({ maxLength: 2048 })),
    region: Type.Optional(Type.String({ maxLength: 64 })),
    bucket: Type.String({ minLength: 3, maxLength: 63 }),
    prefix: Type.Optional(Type.String({ maxLength: 1024 })),
    force_path_style: Type.Optional(Type.Boolean()),
    access_key_id: Type.String({ minLength: 1, maxLength: 256 }),
    secret_access_key: Type.String({ minLength: 1, maxLength: 1024 }),
  },
  strict,
);
const ManifestConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }), Type.String({ maxLength: 4096 }), {
        maxProperties: 20,
        additionalProperties: false,
      }),
    ),
  },
  strict,
);
const YunjiConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: "The other server's base URL" }),
    package_id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The package there' }),
    api_key: Type.String({ minLength: 1, maxLength: 512, description: 'An API key of that server that can read the package' }),
  },
  strict,
);
type YunjiConfig = Static<typeof YunjiConfig>;
type LocalConfig = Static<typeof LocalConfig>;
type S3Config = Static<typeof S3Config>;
type ManifestConfig = Static<typeof ManifestConfig>;
export type SourceConfig = LocalConfig | S3Config | ManifestConfig | YunjiConfig;

export const CreateSourceBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    type: StringEnum(SOURCE_TYPES),
    config: Type.Record(Type.String(), Type.Unknown(), {
      description:
        'http_manifest: {url, headers?}; s3: {endpoint?, region?, bucket, prefix?, force_path_style?, access_key_id, secret_access_key}; local: {path}; yunji: {url, package_id, api_key}',
    }),
    package_id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    mirror: Type.Optional(Type.Boolean({ description: 'Delete objects whose file the source no longer has (default false)' })),
    is_default: Type.Optional(Type.Boolean({ description: 'The source a sync job without `source` uses (one per tenant)' })),
  },
  { ...strict, title: 'CreateExternalDataSourceRequest' },
);
export type CreateSourceBody = Static<typeof CreateSourceBody>;
export const UpdateSourceBody = Type.Partial(Type.Omit(CreateSourceBody, ['type']), {
  ...strict,
  title: 'UpdateExternalDataSourceRequest',
});
export type UpdateSourceBody = Static<typeof UpdateSourceBody>;

export const ExternalDataSource = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    type: StringEnum(SOURCE_TYPES),
    config: Type.Record(Type.String(), Type.Unknown(), { description: 'Secrets masked' }),
    package_id: Type.Integer(),
    mirror: Type.Boolean(),
    is_default: Type.Boolean(),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { title: 'ExternalDataSource' },
);
export type ExternalDataSource = Static<typeof ExternalDataSource>;

export type SourceRow = Selectable<SyncSourcesTable>;

/** Checks a config for its type; returns what is stored in the open and what is sealed. */
async function splitConfig(
  core: Core,
  type: SourceType,
  input: unknown,
): Promise<{ open: Record<string, unknown>; secret: Record<string, unknown> | null }> {
  const schema = type === 'local' ? LocalConfig : type === 's3' ? S3Config : type === 'yunji' ? YunjiConfig : ManifestConfig;
  const problem = schemaProblem(schema, input);
  if (problem) throw badRequest(`config (type '${type}'): ${problem}`, 'config');
  const outbound = outboundPolicy(core.config.outboundAllow);
  if (type === 'local') {
    const { path } = input as LocalConfig;
    return { open: { path: await checkLocalRoot(core, path, 'config.path') }, secret: null };
  }
  if (type === 's3') {
    const { secret_access_key, ...rest } = input as S3Config;
    checkStorage({ type: 'S3', bucket: rest.bucket, ...(rest.endpoint ? { endpoint: rest.endpoint } : {}) });
    if (rest.endpoint) await checkOutboundUrl(outbound, rest.endpoint, 'config.endpoint');
    if (rest.prefix !== undefined) rest.prefix = checkSpacePath(rest.prefix, 'config.prefix');
    return { open: rest, secret: { secret_access_key } };
  }
  if (type === 'yunji') {
    const { api_key, ...rest } = input as YunjiConfig;
    await checkOutboundUrl(outbound, rest.url, 'config.url');
    return { open: rest, secret: { api_key } };
  }
  const { url, headers } = input as ManifestConfig;
  await checkOutboundUrl(outbound, url, 'config.url');
  return { open: { url }, secret: headers ? { headers } : null };
}

/** The source's whole config, secrets opened (for the job that reads it). */
export function sourceConfig(core: Core, row: SourceRow): SourceConfig {
  const open = JSON.parse(row.config_json) as Record<string, unknown>;
  const secret = row.secret_sealed ? (JSON.parse(core.sealer.open(row.secret_sealed)) as Record<string, unknown>) : {};
  return { ...open, ...secret } as SourceConfig;
}

export function toSource(core: Core, row: SourceRow): ExternalDataSource {
  const open = JSON.parse(row.config_json) as Record<string, unknown>;
  let config = open;
  if (row.type === 's3') config = { ...open, secret_access_key: MASK };
  if (row.type === 'yunji') config = { ...open, api_key: MASK };
  if (row.type === 'http_manifest' && row.secret_sealed) {
    const { headers } = sourceConfig(core, row) as ManifestConfig;
    config = { ...open, headers: Object.fromEntries(Object.keys(headers ?? {}).map((k) => [k, MASK])) };
  }
  return {
    id: row.id,
    name: row.name,
    type: row.type as SourceType,
    config,
    package_id: row.package_id,
    mirror: row.mirror === 1,
    is_default: row.is_default === 1,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export async function ownSource(core: Core, tenantId: number, id: number): Promise<SourceRow> {
  const row = await core.db
    .selectFrom('sync_sources')
    .selectAll()
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  if (!row) throw notFound(`source ${id}`);
  return row;
}

/** A source by its name, or by its id written as text. */
export async function sourceNamed(core: Core, tenantId: number, ref: string): Promise<SourceRow | undefined> {
  const byName = await core.db
    .selectFrom('sync_sources')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', ref)
    .executeTakeFirst();
  if (byName || !/^[1-9]\d{0,15}$/.test(ref)) return byName;
  return core.db.selectFrom('sync_sources').selectAll().where('tenant_id', '=', tenantId).where('id', '=', Number(ref)).executeTakeFirst();
}

export async function defaultSource(core: Core, tenantId: number): Promise<SourceRow | undefined> {
  return core.db.selectFrom('sync_sources').selectAll().where('tenant_id', '=', tenantId).where('is_default', '=', 1).executeTakeFirst();
}

const nameTaken = (name: string) => conflict(`a source named '${name}' already exists`);

export async function createSource(core: Core, actor: Actor, body: CreateSourceBody): Promise<ExternalDataSource> {
  requireRole(actor, 'admin');
  await ownPackage(core, actor, body.package_id);
  const { open, secret } = await splitConfig(core, body.type, body.config);
  const now = Date.now();
  try {
    const row = await core.db.transaction().execute(async (trx) => {
      if (body.type === 'local') await claimLocalRoot(trx, core, actor.tenantId, open.path as string, 'config.path');
      if (body.is_default) await trx.updateTable('sync_sources').set({ is_default: 0 }).where('tenant_id', '=', actor.tenantId).execute();
      return trx
        .insertInto('sync_sources')
        .values({
          tenant_id: actor.tenantId,
          name: body.name,
          type: body.type,
          config_json: JSON.stringify(open),
          secret_sealed: secret ? core.sealer.seal(JSON.stringify(secret)) : null,
          package_id: body.package_id,
          mirror: body.mirror ? 1 : 0,
          is_default: body.is_default ? 1 : 0,
          created_at: now,
          updated_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return toSource(core, row);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(body.name);
    throw err;
  }
}

export async function updateSource(core: Core, actor: Actor, id: number, body: UpdateSourceBody): Promise<ExternalDataSource> {
  requireRole(actor, 'admin');
  const row = await ownSource(core, actor.tenantId, id);
  if (body.package_id !== undefined) await ownPackage(core, actor, body.package_id);
  const config = body.config === undefined ? undefined : await splitConfig(core, row.type as SourceType, body.config);
  try {
    const updated = await core.db.transaction().execute(async (trx) => {
      if (config && row.type === 'local') await claimLocalRoot(trx, core, actor.tenantId, config.open.path as string, 'config.path');
      if (body.is_default) await trx.updateTable('sync_sources').set({ is_default: 0 }).where('tenant_id', '=', actor.tenantId).execute();
      return trx
        .updateTable('sync_sources')
        .set({
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(config
            ? {
                config_json: JSON.stringify(config.open),
                secret_sealed: config.secret ? core.sealer.seal(JSON.stringify(config.secret)) : null,
              }
            : {}),
          ...(body.package_id !== undefined ? { package_id: body.package_id } : {}),
          ...(body.mirror !== undefined ? { mirror: body.mirror ? 1 : 0 } : {}),
          ...(body.is_default !== undefined ? { is_default: body.is_default ? 1 : 0 } : {}),
          updated_at: Date.now(),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return toSource(core, updated);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(body.name ?? row.name);
    throw err;
  }
}

export async function deleteSource(core: Core, actor: Actor, id: number): Promise<void> {
  requireRole(actor, 'admin');
  await ownSource(core, actor.tenantId, id);
  await core.db.deleteFrom('sync_sources').where('id', '=', id).execute();
}

export async function listSources(
  core: Core,
  actor: Actor,
  offset: number,
  limit: number,
): Promise<{ items: ExternalDataSource[]; total: number }> {
  const q = core.db.selectFrom('sync_sources').where('tenant_id', '=', actor.tenantId);
  const [rows, count] = await Promise.all([
    q.selectAll().orderBy('id').limit(limit).offset(offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items: rows.map((r) => toSource(core, r)), total: Number(count.n) };
}
