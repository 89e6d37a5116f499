import type { DbCore } from '../db/core.ts';
import type { Db } from '../db/index.ts';
import { forbidden, notFound } from '../lib/errors.ts';
import { pageMeta, pageWindow, type Page, type PageQuery } from '../lib/paging.ts';
import { requireRole, type Actor } from './actor.ts';
import { type ApiKey, type CreatedApiKey, type CreateApiKeyRequest } from './models.ts';
import { iso, isoOrNull } from '../lib/time.ts';
import { roleAtLeast, type UserRole } from './roles.ts';
import { newToken, TOKEN_PREFIX, tokenHash } from './secrets.ts';

const columns = ['id', 'name', 'role', 'key_prefix', 'tenant_id', 'user_id', 'created_at', 'last_used_at'] as const;

function toApiKey(r: {
  id: number;
  name: string;
  role: string;
  key_prefix: string;
  tenant_id: number;
  user_id: number;
  created_at: number;
  last_used_at: number | null;
}): ApiKey {
  return { ...r, role: r.role as UserRole, created_at: iso(r.created_at), last_used_at: isoOrNull(r.last_used_at) };
}

/** Issues a key that acts as `userId` in `tenantId`; the key itself is returned once and stored only hashed. */
export async function issueApiKey(db: Db, tenantId: number, userId: number, name: string, role: UserRole): Promise<CreatedApiKey> {
  const key = newToken(TOKEN_PREFIX.apiKey);
  const row = await db
    .insertInto('api_keys')
    .values({
      tenant_id: tenantId,
      user_id: userId,
      name: name.trim(),
      role,
      key_hash: tokenHash(key),
      key_prefix: key.slice(0, 10),
      created_at: Date.now(),
      last_used_at: null,
    })
    .returning(columns)
    .executeTakeFirstOrThrow();
  return { ...toApiKey(row), key };
}

export async function createApiKey(core: DbCore, actor: Actor, request: CreateApiKeyRequest): Promise<CreatedApiKey> {
  requireRole(actor, 'member');
  if (!roleAtLeast(actor.role, request.role)) {
    throw forbidden(`a key cannot have role '${request.role}', which is above yours ('${actor.role}')`);
  }
  return issueApiKey(core.db, actor.tenantId, actor.userId, request.name, request.role);
}

/** Admins see every key of the tenant; others see their own. */
function visibleKeys(core: DbCore, actor: Actor) {
  let q = core.db.selectFrom('api_keys').where('tenant_id', '=', actor.tenantId);
  if (!roleAtLeast(actor.role, 'admin')) q = q.where('user_id', '=', actor.userId);
  return q;
}

export async function listApiKeys(core: DbCore, actor: Actor, query: PageQuery): Promise<Page<ApiKey>> {
  requireRole(actor, 'viewer');
  const { page, pageSize, offset } = pageWindow(query);
  const rows = await visibleKeys(core, actor).select(columns).orderBy('id').limit(pageSize).offset(offset).execute();
  const { total } = await visibleKeys(core, actor)
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  return { items: rows.map(toApiKey), meta: pageMeta(page, pageSize, Number(total)) };
}

export async function revokeApiKey(core: DbCore, actor: Actor, keyId: number): Promise<void> {
  requireRole(actor, 'member');
  const key = await visibleKeys(core, actor).select('id').where('id', '=', keyId).executeTakeFirst();
  if (!key) throw notFound('API key');
  await core.db.deleteFrom('api_keys').where('id', '=', keyId).execute();
}
