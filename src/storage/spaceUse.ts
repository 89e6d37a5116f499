import type { Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import type { UpdateUserSpaceBody, UserSpace } from '../spaces/models.ts';
import { isPinned } from '../spaces/shardGuard.ts';
import { deleteSpace, updateSpace } from '../spaces/spaces.ts';

/**
 * What of a user space the objects use: storage owns objects and their parts, so the spaces layer
 * asks here (through the functions it is given) before it lets a space or its shard store go.
 */

/** Whether an object or an unfinished upload's part keeps bytes in the space. */
export async function spaceHoldsBytes(core: Core, spaceId: number): Promise<boolean> {
  const object = await core.db.selectFrom('objects').select('id').where('space_id', '=', spaceId).limit(1).executeTakeFirst();
  if (object) return true;
  const part = await core.db.selectFrom('object_parts').select('object_id').where('space_id', '=', spaceId).limit(1).executeTakeFirst();
  return part !== undefined;
}

/** Whether an object or an unfinished upload's part still names these bytes, or a write in flight has pinned them (spaces/shardGuard.ts). */
export async function shardInUse(core: Core, spaceId: number, hash: string): Promise<boolean> {
  const ref = await core.db
    .selectFrom('objects')
    .select('id')
    .where('space_id', '=', spaceId)
    .where('hash', '=', hash)
    .limit(1)
    .executeTakeFirst();
  if (ref) return true;
  const part = await core.db
    .selectFrom('object_parts')
    .select('object_id')
    .where('space_id', '=', spaceId)
    .where('hash', '=', hash)
    .limit(1)
    .executeTakeFirst();
  if (part) return true;
  return isPinned(core, spaceId, hash);
}

/** `updateSpace`, refusing to turn off a shard store that objects still use. */
export function updateUserSpace(core: Core, actor: Actor, body: UpdateUserSpaceBody): Promise<UserSpace> {
  return updateSpace(core, actor, body, (spaceId) => spaceHoldsBytes(core, spaceId));
}

/** `deleteSpace`, refusing a space whose bytes objects still use. */
export function deleteUserSpace(core: Core, actor: Actor, spaceId: number): Promise<void> {
  return deleteSpace(core, actor, spaceId, (id) => spaceHoldsBytes(core, id));
}
