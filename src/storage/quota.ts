import { sql, type Expression, type SqlBool } from 'kysely';
import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Config } from '../lib/settings.ts';
import type { Core } from '../jobs/core.ts';
import { dialectOf } from '../db/dialect.ts';
import type { Db } from '../db/index.ts';
import { groupShared } from '../db/groupCommit.ts';
import { prepared, preparedWrite } from '../db/prepared.ts';
import { AppError, insufficientStorage, notFound } from '../lib/errors.ts';
import { localFileBytes } from '../spaces/spaces.ts';

/**
 * Tenant quotas. What a tenant stores is counted in its `tenant_usage` row: `used_objects` its
 * object rows (unfinished multipart uploads included), `used_bytes` their sizes, each object in
 * full even when its bytes are shared with another (a clone), plus the parts of its unfinished
 * uploads (their bytes are on disk). Every transaction that adds or removes objects or parts
 * changes the count too; a rise is checked against the tenant's limit (its own, or the operator's
 * default; 0: none) as it is written, so two writers cannot both pass it: a conditional update, or
 * for uploads, one read and one write per group commit (`claimInGroup`). `recountUsage` repairs
 * the counts from the tables (at start-up).
 *
 * `local_bytes` counts the files Yunji writes into the tenant's local spaces (the server's own
 * disk; see localFiles.ts); the byte limit holds for `used_bytes + local_bytes`.
 *
 * On PostgreSQL, a transaction that reads what it is about to replace or delete first holds the
 * tenant's usage row (`lockUsage`, or a claim that passed), so every counting writer of one tenant
 * sees the others' committed rows. SQLite has one writer at a time.
 */
export interface Usage {
  bytes: number;
  objects: number;
}

export const NOTHING: Usage = { bytes: 0, objects: 0 };

/** What the byte limit holds: the objects' bytes and the local files'. */
const BYTES_USED = sql<number>`(used_bytes + local_bytes)`;
const OBJECTS_USED = sql.ref<number>('used_objects');

/** `n` more of `used` stays within the limit (the tenant's, or else the default; 0: none); a fall always passes. */
function within(used: Expression<number>, max: 'max_bytes' | 'max_objects', n: number, fallback: number): Expression<SqlBool> {
  const limit = sql`coalesce(${sql.ref(max)}, ${fallback})`;
  return sql<SqlBool>`(cast(${n} as bigint) <= 0 or ${limit} = 0 or ${used} + ${n} <= ${limit})`;
}

/** The counts with `bytes` and `objects` added (either may be negative), never below 0. */
const plus = (bytes: number, objects: number) => ({
  used_bytes: sql<number>`case when used_bytes + ${bytes} < 0 then 0 else used_bytes + ${bytes} end`,
  used_objects: sql<number>`case when used_objects + ${objects} < 0 then 0 else used_objects + ${objects} end`,
});

/** Adds to the tenant's count unless a rise passes its limit. */
const adjust = preparedWrite((db: Db, tenantId: number, bytes: number, objects: number, maxBytes: number, maxObjects: number) =>
  db
    .updateTable('tenant_usage')
    .set(plus(bytes, objects))
    .where('tenant_id', '=', tenantId)
    .where(within(BYTES_USED, 'max_bytes', bytes, maxBytes))
    .where(within(OBJECTS_USED, 'max_objects', objects, maxObjects)),
);

/** Adds to the tenant's count (a rise checked already, or a fall). */
const add = preparedWrite((db: Db, tenantId: number, bytes: number, objects: number) =>
  db.updateTable('tenant_usage').set(plus(bytes, objects)).where('tenant_id', '=', tenantId),
);

/** The local files' count with `bytes` added (either may be negative), never below 0. */
const plusLocal = (bytes: number) => ({
  local_bytes: sql<number>`case when local_bytes + ${bytes} < 0 then 0 else local_bytes + ${bytes} end`,
});

/** Adds to the tenant's local files' count unless a rise passes its byte limit. */
const adjustLocal = preparedWrite((db: Db, tenantId: number, bytes: number, maxBytes: number) =>
  db
    .updateTable('tenant_usage')
    .set(plusLocal(bytes))
    .where('tenant_id', '=', tenantId)
    .where(within(BYTES_USED, 'max_bytes', bytes, maxBytes)),
);

/** Adds to the tenant's local files' count, unchecked. */
const addLocal = preparedWrite((db: Db, tenantId: number, bytes: number) =>
  db.updateTable('tenant_usage').set(plusLocal(bytes)).where('tenant_id', '=', tenantId),
);

const USAGE_COLUMNS = ['used_bytes', 'used_objects', 'local_bytes', 'max_bytes', 'max_objects'] as const;

const usageRow = preparedWrite((db: Db, tenantId: number) =>
  db.selectFrom('tenant_usage').select(USAGE_COLUMNS).where('tenant_id', '=', tenantId),
);

/** A tenant's usage row, made the first time it is needed (a tenant made after migration 0015 has none until then). */
const ensureRow = preparedWrite((db: Db, tenantId: number) =>
  db
    .insertInto('tenant_usage')
    .values({ tenant_id: tenantId })
    .onConflict((oc) => oc.column('tenant_id').doNothing()),
);

/** PostgreSQL: the tenant's usage row, made if missing and held until the transaction ends, read in one statement. */
const heldUsageRow = preparedWrite((db: Db, tenantId: number) =>
  db
    .insertInto('tenant_usage')
    .values({ tenant_id: tenantId })
    .onConflict((oc) => oc.column('tenant_id').doUpdateSet((eb) => ({ tenant_id: eb.ref('excluded.tenant_id') })))
    .returning(USAGE_COLUMNS),
);

const lockRow = preparedWrite((db: Db, tenantId: number) =>
  db.selectFrom('tenant_usage').select('tenant_id').where('tenant_id', '=', tenantId).forUpdate(),
);

/** The tenant with its usage (a tenant without a usage row has used nothing and has no limits of its own). */
function quotaQuery(db: Db, tenantId: number) {
  return db
    .selectFrom('tenants as t')
    .leftJoin('tenant_usage as u', 'u.tenant_id', 't.id')
    .select(['t.id', 't.name', 'u.tenant_id as counted', 'u.used_bytes', 'u.used_objects', 'u.local_bytes', 'u.max_bytes', 'u.max_objects'])
    .where('t.id', '=', tenantId);
}
const quotaRow = prepared(quotaQuery);
const quotaRowIn = preparedWrite(quotaQuery);

interface QuotaRow {
  id: number;
  name: string;
  counted: number | null;
  used_bytes: number | null;
  used_objects: number | null;
  local_bytes: number | null;
  max_bytes: number | null;
  max_objects: number | null;
}

/** A tenant's usage, its limits in force (0: none) and its own settings (null: the operator's default). */
export interface TenantQuota {
  tenant_id: number;
  name: string;
  /** What the byte limit holds: the objects' bytes and `local_bytes`. */
  used_bytes: number;
  /** The part of `used_bytes` that is files Yunji wrote into the tenant's local spaces. */
  local_bytes: number;
  used_objects: number;
  max_bytes: number;
  max_objects: number;
  overrides: { max_bytes: number | null; max_objects: number | null };
}

function toTenantQuota(config: Config, row: QuotaRow): TenantQuota {
  return {
    tenant_id: row.id,
    name: row.name,
    used_bytes: Number(row.used_bytes ?? 0) + Number(row.local_bytes ?? 0),
    local_bytes: Number(row.local_bytes ?? 0),
    used_objects: Number(row.used_objects ?? 0),
    max_bytes: row.max_bytes ?? config.tenantMaxBytes,
    max_objects: row.max_objects ?? config.tenantMaxObjects,
    overrides: { max_bytes: row.max_bytes, max_objects: row.max_objects },
  };
}

/** The 507 for asking `asked` more of a tenant whose quota is `q`, naming the limit, the usage and the ask. */
function quotaFull(q: TenantQuota, asked: Usage): AppError {
  if (asked.objects > 0 && q.max_objects > 0 && q.used_objects + asked.objects > q.max_objects) {
    return insufficientStorage(
      `the tenant's quota of ${q.max_objects} objects is full: ${q.used_objects} used, ${asked.objects} more asked`,
    );
  }
  return insufficientStorage(`the tenant's quota of ${q.max_bytes} bytes is full: ${q.used_bytes} used, ${asked.bytes} more asked`);
}

/** Runs `claim` (a conditional update of the tenant's row, true if it passed), making the row first if it is missing; the 507 for `asked` if it did not pass. */
async function claimed(
  trx: Db,
  config: Config,
  tenantId: number,
  asked: Usage,
  claim: () => Promise<boolean>,
): Promise<AppError | undefined> {
  if (await claim()) return undefined;
  const [row] = (await quotaRowIn(trx, tenantId)).rows;
  if (!row) throw notFound(`tenant ${tenantId}`);
  if (row.counted === null) {
    await ensureRow(trx, tenantId);
    if (await claim()) return undefined;
  }
  return quotaFull(toTenantQuota(config, row), asked);
}

/**
 * Counts `delta` for the tenant inside `trx`: a rise only within its limits. Returns the 507 to
 * throw when it does not fit (nothing is counted then), so a caller in a shared transaction can
 * answer it without spoiling the others'.
 */
export function claimUsage(trx: Db, config: Config, tenantId: number, delta: Usage): Promise<AppError | undefined> {
  return claimed(
    trx,
    config,
    tenantId,
    delta,
    async () =>
      Number((await adjust(trx, tenantId, delta.bytes, delta.objects, config.tenantMaxBytes, config.tenantMaxObjects)).numAffectedRows) > 0,
  );
}

/** Counts `bytes` more of the tenant's local files, within its byte limit, as `claimUsage` does; the 507 when they do not fit. */
function claimLocalBytes(db: Db, config: Config, tenantId: number, bytes: number): Promise<AppError | undefined> {
  return claimed(
    db,
    config,
    tenantId,
    { bytes, objects: 0 },
    async () => Number((await adjustLocal(db, tenantId, bytes, config.tenantMaxBytes)).numAffectedRows) > 0,
  );
}

/** Adds `bytes` (either sign) to the tenant's local files' count, unchecked: bytes already on disk, or gone from it. */
async function countLocalBytes(db: Db, tenantId: number, bytes: number): Promise<void> {
  if (bytes !== 0) await addLocal(db, tenantId, bytes);
}

/** A budget claims this much of the local files' count at a time (more if one write needs more): few updates for many files. */
export const LOCAL_CLAIM_CHUNK = 64 * 1024 * 1024;

/**
 * Per tenant, what this process's budgets hold of its local count (with claims in flight) and the
 * bytes given back into them in all: a recount adds both (`measureLocalFiles`), as the disk does not hold them.
 */
const budgets = new Map<number, { held: number; freed: number }>();

function budgetsOf(tenantId: number): { held: number; freed: number } {
  let ledger = budgets.get(tenantId);
  if (!ledger) budgets.set(tenantId, (ledger = { held: 0, freed: 0 }));
  return ledger;
}

/**
 * One operation's reservation of a tenant's byte quota for the local files it writes
 * (localFiles.ts): writes take from its balance and freed bytes go back to it in memory; when short
 * it claims `LOCAL_CLAIM_CHUNK` from the count (refused, exactly what is missing), and `release()`
 * returns what is left. What it holds counts as used meanwhile: two chunks at most, beyond what one
 * write in progress needs.
 */
export class LocalBytesBudget {
  private balance = 0;
  private claiming: Promise<void> | undefined;
  private readonly ledger: { held: number; freed: number };

  constructor(
    private readonly core: Core,
    private readonly tenantId: number,
    /** Whether the operation's local files are counted: only while a byte limit applies (see `forOperation`). */
    readonly counting = true,
  ) {
    this.ledger = budgetsOf(tenantId);
  }

  /**
   * The budget of one export or sync: counting only when the tenant has a byte limit, since without
   * one nothing can be refused and every file would cost its count for nothing. A limit can only
   * appear through `set-quota`, which measures the tenant's local files, or a new default, which
   * takes a restart, whose recount measures them.
   */
  static async forOperation(core: Core, tenantId: number): Promise<LocalBytesBudget> {
    return new LocalBytesBudget(core, tenantId, (await tenantQuota(core, tenantId)).max_bytes > 0);
  }

  /** Takes `bytes` from the balance, claiming first when it is short; throws the 507 when even the bytes missing do not fit. */
  async take(bytes: number): Promise<void> {
    while (this.balance < bytes) {
      // One claim at a time: concurrent writers wait for it rather than each claiming a chunk.
      this.claiming ??= this.claim(bytes - this.balance).finally(() => (this.claiming = undefined));
      await this.claiming;
    }
    this.balance -= bytes;
    this.ledger.held -= bytes;
  }

  /** Puts `bytes` back (freed, or taken and not written); negative: bytes written beyond what was taken, on disk all the same. */
  async give(bytes: number): Promise<void> {
    this.balance += bytes;
    this.ledger.held += bytes;
    if (bytes > 0) this.ledger.freed += bytes;
    // A mirror delete may free much: past two chunks, all but one go back to the count now.
    if (this.balance > 2 * LOCAL_CLAIM_CHUNK) await this.giveBack(this.balance - LOCAL_CLAIM_CHUNK);
  }

  /** Returns what is left to the count (or counts what was written beyond it), with one update; to be called once the operation's writes are over. */
  release(): Promise<void> {
    return this.giveBack(this.balance);
  }

  private async claim(missing: number): Promise<void> {
    for (const bytes of missing < LOCAL_CLAIM_CHUNK ? [LOCAL_CLAIM_CHUNK, missing] : [missing]) {
      // Held before the update: a recount meanwhile counts it twice rather than not at all.
      this.ledger.held += bytes;
      const refused = await claimLocalBytes(this.core.db, this.core.config, this.tenantId, bytes).catch((err: unknown) => {
        this.ledger.held -= bytes;
        throw err;
      });
      if (!refused) {
        this.balance += bytes;
        return;
      }
      this.ledger.held -= bytes;
      if (bytes === missing) throw refused;
    }
  }

  /** Gives `bytes` of the balance back to the count (negative: counts them); a failure is logged, and the next recount repairs the count. */
  private async giveBack(bytes: number): Promise<void> {
    if (bytes === 0) return;
    this.balance -= bytes;
    this.ledger.held -= bytes;
    await countLocalBytes(this.core.db, this.tenantId, -bytes).catch((err: unknown) =>
      this.core.log.warn(
        { err, tenantId: this.tenantId, bytes },
        "returning a local files' reservation failed; the next recount repairs the count",
      ),
    );
  }
}

/** Takes `freed` off the tenant's count inside `trx`. */
export async function releaseUsage(trx: Db, tenantId: number, freed: Usage): Promise<void> {
  if (freed.bytes === 0 && freed.objects === 0) return;
  await add(trx, tenantId, -freed.bytes, -freed.objects);
}

/** Holds the tenant's usage row until `trx` ends (PostgreSQL; SQLite's transactions are serial already). */
export async function lockUsage(trx: Db, tenantId: number): Promise<void> {
  if (dialectOf(trx) !== 'postgres') return;
  await ensureRow(trx, tenantId);
  await lockRow(trx, tenantId);
}

/**
 * Counts `adding` in place of what `replaced` gives back: the usual case claims `adding` whole
 * (holding the tenant's usage row), then gives back what it replaces; only when that does not fit is
 * the difference asked, so a replacement that frees as much as it adds passes a full quota.
 * `replaced` runs once, with the tenant's usage row held.
 */
export async function claimReplacing(
  trx: Db,
  config: Config,
  tenantId: number,
  adding: Usage,
  replaced: () => Promise<Usage>,
): Promise<AppError | undefined> {
  const refused = await claimUsage(trx, config, tenantId, adding);
  if (!refused) {
    await releaseUsage(trx, tenantId, await replaced());
    return undefined;
  }
  await lockUsage(trx, tenantId);
  const freed = await replaced();
  if (freed.bytes === 0 && freed.objects === 0) return refused;
  return claimUsage(trx, config, tenantId, { bytes: adding.bytes - freed.bytes, objects: adding.objects - freed.objects });
}

/** A tenant's usage as one group transaction sees it: read once (its row held), changed in memory, written once. */
interface GroupUsage {
  quota: TenantQuota;
  delta: Usage;
}

/**
 * `claimReplacing` for the work of `inGroupCommit`: the tenant's usage is read once per group
 * (its row held on PostgreSQL), each item is checked against it in memory, and the group's total
 * is written once before the group commits, so the many small uploads of a group cost one read
 * and one write of the row between them, not one update each. `replaced` learns whether `adding`
 * fits even if it frees nothing (`fitsAnyway`): then it cannot be refused, and the caller may
 * write as it reads what it replaces.
 */
export async function claimInGroup(
  trx: Db,
  config: Config,
  tenantId: number,
  adding: Usage,
  replaced: (fitsAnyway: boolean) => Promise<Usage>,
): Promise<AppError | undefined> {
  const group = await groupShared<GroupUsage>(
    trx,
    `tenant-usage:${tenantId}`,
    async () => {
      let [row] = dialectOf(trx) === 'postgres' ? (await heldUsageRow(trx, tenantId)).rows : (await usageRow(trx, tenantId)).rows;
      if (!row) {
        await ensureRow(trx, tenantId);
        row = { used_bytes: 0, used_objects: 0, local_bytes: 0, max_bytes: null, max_objects: null };
      }
      return { quota: toTenantQuota(config, { id: tenantId, name: '', counted: tenantId, ...row }), delta: { ...NOTHING } };
    },
    async ({ delta }) => {
      if (delta.bytes !== 0 || delta.objects !== 0) await add(trx, tenantId, delta.bytes, delta.objects);
    },
  );
  const now = {
    ...group.quota,
    used_bytes: group.quota.used_bytes + group.delta.bytes,
    used_objects: group.quota.used_objects + group.delta.objects,
  };
  const freed = await replaced(!over(now, adding));
  const net = { bytes: adding.bytes - freed.bytes, objects: adding.objects - freed.objects };
  // Never true when `adding` fitted as it is: `net` is no more than it.
  if (over(now, net)) return quotaFull(now, net);
  group.delta.bytes += net.bytes;
  group.delta.objects += net.objects;
  return undefined;
}

/** A tenant's usage and limits, or 404. */
export async function tenantQuota(core: Core, tenantId: number): Promise<TenantQuota> {
  const [row] = await quotaRow(core.db, tenantId);
  if (!row) throw notFound(`tenant ${tenantId}`);
  return toTenantQuota(core.config, row);
}

/** The actor's tenant's usage and limits in force (0: none), for its members to see. */
export async function currentTenantUsage(
  core: Core,
  actor: Actor,
): Promise<Pick<TenantQuota, 'used_bytes' | 'local_bytes' | 'used_objects' | 'max_bytes' | 'max_objects'>> {
  requireRole(actor, 'viewer');
  const { used_bytes, local_bytes, used_objects, max_bytes, max_objects } = await tenantQuota(core, actor.tenantId);
  return { used_bytes, local_bytes, used_objects, max_bytes, max_objects };
}

const over = (q: TenantQuota, asked: Usage) =>
  (asked.bytes > 0 && q.max_bytes > 0 && q.used_bytes + asked.bytes > q.max_bytes) ||
  (asked.objects > 0 && q.max_objects > 0 && q.used_objects + asked.objects > q.max_objects);

/**
 * Refuses (507) what cannot fit in the room the tenant has now, before any byte of it is stored,
 * even counting the bytes `replaceable` says it could give back (asked only when it does not fit
 * as it is); the claim at commit is what holds.
 */
export async function checkRoom(core: Core, tenantId: number, asked: Usage, replaceable?: () => Promise<number>): Promise<void> {
  await refuseOverRoom(core.config, await tenantQuota(core, tenantId), asked, replaceable);
}

/** The columns of a tenant's usage row that `refuseOverRoom` reads (null: no row yet), for a caller that reads them with its own query. */
export type UsageColumns = Pick<QuotaRow, 'used_bytes' | 'used_objects' | 'local_bytes' | 'max_bytes' | 'max_objects'>;

/** `checkRoom` on usage the caller has read already (a quota, or the columns of its usage row). */
export async function refuseOverRoom(
  config: Config,
  usage: TenantQuota | UsageColumns,
  asked: Usage,
  replaceable?: () => Promise<number>,
): Promise<void> {
  const q = 'tenant_id' in usage ? usage : toTenantQuota(config, { id: 0, name: '', counted: null, ...usage });
  if (!over(q, asked)) return;
  if (replaceable && !over(q, { bytes: asked.bytes - (await replaceable()), objects: asked.objects })) return;
  throw quotaFull(q, asked);
}

/** Sets a tenant's own limits (`null`: back to the operator's default; 0: none); fields left out stay. */
export async function setTenantQuota(
  core: Core,
  tenantId: number,
  limits: { maxBytes?: number | null; maxObjects?: number | null },
): Promise<TenantQuota> {
  await tenantQuota(core, tenantId);
  const changes: { max_bytes?: number | null; max_objects?: number | null } = {};
  if (limits.maxBytes !== undefined) changes.max_bytes = limits.maxBytes;
  if (limits.maxObjects !== undefined) changes.max_objects = limits.maxObjects;
  if (Object.keys(changes).length === 0) return tenantQuota(core, tenantId);
  await core.db
    .insertInto('tenant_usage')
    .values({ tenant_id: tenantId, ...changes })
    .onConflict((oc) => oc.column('tenant_id').doUpdateSet(changes))
    .execute();
  // Local files are counted only under a byte limit (LocalBytesBudget.forOperation): measured now, the count is right from here on.
  if (changes.max_bytes !== undefined) await recountUsage(core, tenantId);
  return tenantQuota(core, tenantId);
}

/** What the objects of a tenant, a package or a bucket hold: how many, and their bytes with their parts'. */
async function heldIn(db: Db, scope: { tenantId: number } | { packageId: number } | { bucketId: number }): Promise<Usage> {
  const [column, value] =
    'tenantId' in scope
      ? (['b.tenant_id', scope.tenantId] as const)
      : 'packageId' in scope
        ? (['p.id', scope.packageId] as const)
        : (['p.bucket_id', scope.bucketId] as const);
  const objects = () =>
    db
      .selectFrom('objects as o')
      .innerJoin('packages as p', 'p.id', 'o.package_id')
      .innerJoin('buckets as b', 'b.id', 'p.bucket_id')
      .where(column, '=', value);
  const held = await objects()
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('o.size'), sql<number>`0`).as('bytes')])
    .executeTakeFirstOrThrow();
  const parts = await objects()
    .innerJoin('object_parts as op', 'op.object_id', 'o.id')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('op.size'), sql<number>`0`).as('bytes'))
    .executeTakeFirstOrThrow();
  return { bytes: Number(held.bytes) + Number(parts.bytes), objects: Number(held.n) };
}

/** A tenant's counts as a recount shows them (`used_bytes` includes `local_bytes`, as in TenantQuota). */
export interface Counts {
  used_bytes: number;
  used_objects: number;
  local_bytes: number;
}

/** A tenant's counts before and after a recount. */
export interface Recount {
  tenant_id: number;
  before: Counts;
  after: Counts;
}

const countsOf = (row: { used_bytes: number; used_objects: number; local_bytes: number } | undefined): Counts => ({
  used_bytes: Number(row?.used_bytes ?? 0) + Number(row?.local_bytes ?? 0),
  used_objects: Number(row?.used_objects ?? 0),
  local_bytes: Number(row?.local_bytes ?? 0),
});

/**
 * The bytes of the files in the tenant's local spaces, walked from the disk while its writers go
 * on: what its local count rose by during the walk is added, so a file written meanwhile is never
 * missed (it may count twice until the next recount), and so are this process's budgets (what they
 * held at the start, and gave back into them meanwhile), which are counted and not on disk.
 * Undefined, and logged, if a walk failed.
 */
async function measureLocalFiles(core: Core, tenantId: number): Promise<((nowCounted: number) => number) | undefined> {
  const [start] = (await usageRow(core.db, tenantId)).rows;
  const ledger = budgetsOf(tenantId);
  const { held, freed } = ledger;
  try {
    const walked = await localFileBytes(core, tenantId);
    return (nowCounted) => Math.max(0, walked + Math.max(0, nowCounted - Number(start?.local_bytes ?? 0)) + held + (ledger.freed - freed));
  } catch (err) {
    core.log.warn({ err, tenantId }, "measuring a tenant's local spaces failed; its local files' count is kept");
    return undefined;
  }
}

/**
 * Sets each tenant's counts (or one tenant's; 404 if there is none) from its objects and parts, and
 * from its local spaces' files (walked first, outside the transaction), each tenant in its own
 * transaction, holding its usage row (PostgreSQL) so that writers running meanwhile are counted
 * once, before or after. Returns what each count was and is.
 */
export async function recountUsage(core: Core, tenantId?: number): Promise<Recount[]> {
  let query = core.db.selectFrom('tenants').select('id').orderBy('id');
  if (tenantId !== undefined) query = query.where('id', '=', tenantId);
  const tenants = await query.execute();
  if (tenantId !== undefined && tenants.length === 0) throw notFound(`tenant ${tenantId}`);
  const recounts: Recount[] = [];
  for (const { id } of tenants) {
    const local = await measureLocalFiles(core, id);
    await core.db.transaction().execute(async (trx) => {
      await lockUsage(trx, id);
      const [was] = (await usageRow(trx, id)).rows;
      const held = await heldIn(trx, { tenantId: id });
      const counted = Number(was?.local_bytes ?? 0);
      const used = { used_bytes: held.bytes, used_objects: held.objects, local_bytes: local ? local(counted) : counted };
      await trx
        .insertInto('tenant_usage')
        .values({ tenant_id: id, ...used })
        .onConflict((oc) => oc.column('tenant_id').doUpdateSet(used))
        .execute();
      recounts.push({ tenant_id: id, before: countsOf(was), after: countsOf(used) });
    });
  }
  return recounts;
}

/**
 * Deletes the objects `ids` names (within `packageId` when given) with their parts, and gives
 * back what they held; returns the ids deleted. Run inside a transaction.
 */
export async function deleteObjectsCounted(trx: Db, tenantId: number, ids: number[], packageId?: number): Promise<number[]> {
  if (ids.length === 0) return [];
  await lockUsage(trx, tenantId);
  // Parts go with their objects (cascade); their bytes are given back with them.
  const parts = await trx
    .selectFrom('object_parts as op')
    .innerJoin('objects as o', 'o.id', 'op.object_id')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('op.size'), sql<number>`0`).as('bytes'))
    .where('o.id', 'in', ids)
    .$if(packageId !== undefined, (q) => q.where('o.package_id', '=', packageId!))
    .executeTakeFirstOrThrow();
  const deleted = await trx
    .deleteFrom('objects')
    .where('id', 'in', ids)
    .$if(packageId !== undefined, (q) => q.where('package_id', '=', packageId!))
    .returning(['id', 'size'])
    .execute();
  await releaseUsage(trx, tenantId, { bytes: deleted.reduce((n, o) => n + Number(o.size), Number(parts.bytes)), objects: deleted.length });
  return deleted.map((o) => o.id);
}

/**
 * Gives back what a package or a bucket holds, inside the transaction that is about to delete it
 * (its objects and their parts go by cascade).
 */
export async function releaseHeldIn(trx: Db, tenantId: number, scope: { packageId: number } | { bucketId: number }): Promise<void> {
  await lockUsage(trx, tenantId);
  await releaseUsage(trx, tenantId, await heldIn(trx, scope));
}
