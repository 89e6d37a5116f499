import { Type } from '@sinclair/typebox';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../core.ts';
import { badRequest, notFound } from '../errors.ts';
import { defineAction } from '../jobs/actions.ts';
import type { Job } from '../jobs/models.ts';
import { activeJobByKey, JobKeyConflict, submitJob } from '../jobs/store.ts';
import { shardInUse, spaceById } from '../spaces/spaces.ts';
import { deleteObjectsCounted } from './quota.ts';

const BATCH = 500;

const DeleteUserDataParams = Type.Object({ userId: Type.Integer({ minimum: 1 }), email: Type.String() }, { additionalProperties: false });

/**
 * `delete_user_data`: deletes every object a user uploaded in the job's tenant, then their bytes
 * in every space unless another object (someone else's, or a clone) still uses them. Batches are
 * committed one by one, so a cancelled or retried run goes on from where it stopped.
 */
export const deleteUserData = defineAction(DeleteUserDataParams, {
  name: 'delete_user_data',
  family: 'job',
  maxAttempts: 5,
  describe: (p) => `Delete user data of userId = ${p.email}`,
  async run(ctx) {
    const { core, job } = ctx;
    const { userId } = ctx.params;
    const tenantObjects = () =>
      core.db
        .selectFrom('objects as o')
        .innerJoin('packages as p', 'p.id', 'o.package_id')
        .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
        .where('b.tenant_id', '=', job.tenantId)
        .where('o.created_by', '=', userId);
    const { n } = await tenantObjects()
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    const total = Number(n);
    let deleted = 0;
    let bytesFreed = 0;
    let shardsRemoved = 0;
    let shardsKept = 0;
    ctx.progress(0, total, `deleting ${total} objects`);
    for (;;) {
      ctx.checkpoint();
      const batch = await tenantObjects().select(['o.id', 'o.space_id', 'o.hash']).orderBy('o.id').limit(BATCH).execute();
      if (batch.length === 0) break;
      const ids = batch.map((o) => o.id);
      // Parts of the user's unfinished multipart uploads go with their objects (cascade): their bytes too.
      const parts = await core.db.selectFrom('object_parts').select(['space_id', 'hash']).where('object_id', 'in', ids).execute();
      await core.db.transaction().execute((trx) => deleteObjectsCounted(trx, job.tenantId, ids));
      deleted += batch.length;
      const shards = new Map<string, { spaceId: number; hash: string }>();
      for (const s of [...batch.map((o) => ({ spaceId: o.space_id, hash: o.hash })), ...parts.map((p) => ({ spaceId: p.space_id, hash: p.hash }))]) {
        shards.set(`${s.spaceId}:${s.hash}`, s);
      }
      for (const { spaceId, hash } of shards.values()) {
        try {
          const space = await spaceById(core, spaceId);
          const freed = space.store ? await space.store.removeIfUnused(hash, core.config.shardGrace * 1000, (h) => shardInUse(core, spaceId, h)) : 0;
          if (freed > 0) {
            bytesFreed += freed;
            shardsRemoved++;
          } else shardsKept++;
        } catch (err) {
          ctx.error(`removing bytes ${hash} from user space ${spaceId}: ${(err as Error).message}`, `${spaceId}/${hash}`);
        }
      }
      ctx.progress(deleted, Math.max(total, deleted), `deleted ${deleted} objects`);
      ctx.stats({ objectsDeleted: deleted, bytesFreed, shardsRemoved, shardsKept });
    }
    ctx.log(`deleted ${deleted} objects; removed ${shardsRemoved} shards (${bytesFreed} bytes); ${shardsKept} shards still used by other objects or too recent (the sweeper takes those once unused)`);
    return { objectsDeleted: deleted, bytesFreed, shardsRemoved, shardsKept };
  },
});

/**
 * Schedules the deletion of a member's data in the actor's tenant, `startAt` (epoch ms) or the
 * configured delay from now, so it can still be cancelled. A deletion already pending for that
 * user is returned instead of a second one.
 */
export async function requestUserDataDeletion(core: Core, actor: Actor, who: string, startAt?: number): Promise<Job> {
  requireRole(actor, 'admin');
  const member = await core.db
    .selectFrom('users as u')
    .innerJoin('memberships as m', 'm.user_id', 'u.id')
    .select(['u.id', 'u.email'])
    .where('m.tenant_id', '=', actor.tenantId)
    .where(/^\d{1,15}$/.test(who) ? 'u.id' : 'u.email', '=', /^\d{1,15}$/.test(who) ? Number(who) : who.toLowerCase())
    .executeTakeFirst();
  if (!member) throw notFound(`user '${who.slice(0, 100)}'`);
  const now = Date.now();
  if (startAt !== undefined && startAt < now - 1000) throw badRequest('startAt is in the past', 'startAt');
  const key = `delete_user_data:${actor.tenantId}:${member.id}`;
  const pending = await activeJobByKey(core, key);
  if (pending) return pending;
  try {
    return await submitJob(core, {
      tenantId: actor.tenantId,
      action: deleteUserData.name,
      params: { userId: member.id, email: member.email },
      trigger: 'manual',
      referenceId: member.email,
      concurrencyKey: key,
      startAt: startAt ?? now + core.config.deleteDelay * 1000,
      createdBy: actor.userId,
    });
  } catch (err) {
    if (err instanceof JobKeyConflict) return err.existing;
    throw err;
  }
}
