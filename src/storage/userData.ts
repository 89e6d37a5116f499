import { Type } from '@sinclair/typebox';
import { requireRole, type Actor } from '../accounts/actor.ts';
import { Email } from '../accounts/models.ts';
import type { Core } from '../jobs/core.ts';
import { badRequest } from '../lib/errors.ts';
import { defineAction } from '../jobs/actions.ts';
import type { Job } from '../jobs/models.ts';
import { activeJobByKey, JobKeyConflict, submitJob } from '../jobs/store.ts';
import { spaceById } from '../spaces/spaces.ts';
import { shardInUse } from './spaceUse.ts';
import { schemaProblem } from '../lib/validation.ts';
import { sweepCutoff } from '../spaces/writeFence.ts';
import { deleteObjectsCounted } from './quota.ts';

const BATCH = 500;

/**
 * Whom an erasure is for, as the request named them: an account id or an email (lower case). Never
 * resolved when the request is made, so the request tells nothing of whether the account exists.
 * (Jobs recorded before carry both; the id is what they meant.)
 */
const DeleteUserDataParams = Type.Object(
  { userId: Type.Optional(Type.Integer({ minimum: 1 })), email: Type.Optional(Type.String({ maxLength: 254 })) },
  { additionalProperties: false },
);

/** The account an erasure is for, when there is one: by id as given, by email through the account that has it. */
async function subjectOf(core: Core, p: { userId?: number; email?: string }): Promise<number | undefined> {
  if (p.userId !== undefined) return p.userId;
  if (p.email === undefined) return undefined;
  return (await core.db.selectFrom('users').select('id').where('email', '=', p.email).executeTakeFirst())?.id;
}

/**
 * `delete_user_data`: deletes every object the identity uploaded in the job's tenant, then their
 * bytes in every space unless another object (someone else's, or a clone) still uses them; where
 * the identity names no account or one with nothing here, it deletes nothing and its result says
 * `objectsDeleted: 0`, with the same progress and log as any other empty erasure. Batches are
 * committed one by one, so a cancelled or retried run goes on from where it stopped.
 */
export const deleteUserData = defineAction(DeleteUserDataParams, {
  name: 'delete_user_data',
  family: 'job',
  // Only through the erasure request: an admin, the delay, and one pending request per identity.
  direct: false,
  maxAttempts: 5,
  describe: (p) => `Delete user data of userId = ${p.email ?? p.userId}`,
  async run(ctx) {
    const { core, job } = ctx;
    const userId = await subjectOf(core, ctx.params);
    const tenantObjects = (id: number) =>
      core.db
        .selectFrom('objects as o')
        .innerJoin('packages as p', 'p.id', 'o.package_id')
        .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
        .where('b.tenant_id', '=', job.tenantId)
        .where('o.created_by', '=', id);
    const count = async () =>
      userId === undefined
        ? 0
        : Number(
            (
              await tenantObjects(userId)
                .select((eb) => eb.fn.countAll<number>().as('n'))
                .executeTakeFirstOrThrow()
            ).n,
          );
    const nextBatch = async () =>
      userId === undefined ? [] : tenantObjects(userId).select(['o.id', 'o.space_id', 'o.hash']).orderBy('o.id').limit(BATCH).execute();
    const total = await count();
    let deleted = 0;
    let bytesFreed = 0;
    let shardsRemoved = 0;
    let shardsKept = 0;
    ctx.progress(0, total, `deleting ${total} objects`);
    for (;;) {
      ctx.checkpoint();
      const batch = await nextBatch();
      if (batch.length === 0) break;
      const ids = batch.map((o) => o.id);
      // Parts of the user's unfinished multipart uploads go with their objects (cascade): their bytes too.
      const parts = await core.db.selectFrom('object_parts').select(['space_id', 'hash']).where('object_id', 'in', ids).execute();
      await core.db.transaction().execute((trx) => deleteObjectsCounted(trx, job.tenantId, ids));
      deleted += batch.length;
      const shards = new Map<string, { spaceId: number; hash: string }>();
      for (const s of [
        ...batch.map((o) => ({ spaceId: o.space_id, hash: o.hash })),
        ...parts.map((p) => ({ spaceId: p.space_id, hash: p.hash })),
      ]) {
        shards.set(`${s.spaceId}:${s.hash}`, s);
      }
      const cutoff = await sweepCutoff(core);
      for (const { spaceId, hash } of shards.values()) {
        try {
          const space = await spaceById(core, spaceId);
          const freed = space.store ? await space.store.removeIfUnused(hash, cutoff, (h) => shardInUse(core, spaceId, h)) : 0;
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
    ctx.log(
      `deleted ${deleted} objects; removed ${shardsRemoved} shards (${bytesFreed} bytes); ${shardsKept} shards still used by other objects or too recent (the sweeper takes those once unused)`,
    );
    return { objectsDeleted: deleted, bytesFreed, shardsRemoved, shardsKept };
  },
});

const USER_ID = /^[1-9]\d{0,15}$/;

/** The identity an erasure request names: a user id written plainly, or an email address (lower case); 400 otherwise. */
function identityOf(who: string): { userId: number } | { email: string } {
  if (USER_ID.test(who) && Number.isSafeInteger(Number(who))) return { userId: Number(who) };
  const email = who.toLowerCase();
  if (!USER_ID.test(who) && schemaProblem(Email, email) === undefined) return { email };
  throw badRequest(`userId must be a user's id (a positive integer) or an email address (got '${who.slice(0, 100)}')`, 'userId');
}

/**
 * Records a request to erase what an identity (an account id or an email) created in the actor's
 * tenant, to run at `startAt` (epoch ms) or the configured delay from now, so it can still be
 * cancelled. Any well-formed identifier is accepted alike, whether or not it names an account or
 * a member (the job finds what there is when it runs). A request still pending for the same
 * identifier is returned instead of a second one; an id and an email are two identifiers even
 * when they name one account (joining them would tell which email an id has).
 */
export async function requestUserDataDeletion(core: Core, actor: Actor, who: string, startAt?: number): Promise<Job> {
  requireRole(actor, 'admin');
  const identity = identityOf(who);
  const now = Date.now();
  if (startAt !== undefined && startAt < now - 1000) throw badRequest('startAt is in the past', 'startAt');
  const named = 'userId' in identity ? String(identity.userId) : identity.email;
  // An id keeps the key requests had when they were resolved to the account's id.
  const key =
    'userId' in identity
      ? `delete_user_data:${actor.tenantId}:${identity.userId}`
      : `delete_user_data:${actor.tenantId}:email:${identity.email}`;
  const pending = await activeJobByKey(core, key);
  if (pending) return pending;
  try {
    return await submitJob(core, {
      tenantId: actor.tenantId,
      action: deleteUserData.name,
      params: identity,
      trigger: 'manual',
      referenceId: named,
      concurrencyKey: key,
      startAt: startAt ?? now + core.config.deleteDelay * 1000,
      createdBy: actor.userId,
    });
  } catch (err) {
    if (err instanceof JobKeyConflict) return err.existing;
    throw err;
  }
}
