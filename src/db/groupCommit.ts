import { TurnBatch, unsettle, type Settled } from '../lib/turnBatch.ts';
import type { Db } from './index.ts';

/**
 * Group commit: small write transactions submitted while another group is committing run together
 * in the next transaction, one after another. A commit costs more than the few statements of one
 * upload (on SQLite the WAL append and its bookkeeping, on PostgreSQL a WAL flush and a round
 * trip), so many concurrent uploads share one.
 *
 * Each item keeps its own outcome: when one throws, the shared transaction is rolled back and run
 * again without it, and it is run alone (see `together`), so the others commit and it is rejected
 * with its own error. An item may therefore run more than once, each run but the last rolled back.
 * An item's promise settles only once the transaction that keeps it has committed, so a caller that
 * was answered "done" is durable. If the shared commit itself fails (a deadlock, a lost
 * connection), every item of the group is run again alone.
 *
 * Items must only talk to the database (no network or disk waits, nothing done outside the
 * transaction): the group holds the writer while they run.
 */
export type GroupWork<T> = (trx: Db) => Promise<T>;

interface Item {
  work: GroupWork<unknown>;
  outcome?: Settled<unknown>;
}

/** Largest group: bounds how long one transaction holds the writer. */
const MAX_GROUP = 256;

class Committer {
  // One group at a time: the next forms from what arrives while one commits (lib/turnBatch.ts).
  private readonly groups = new TurnBatch<GroupWork<unknown>, Settled<unknown>>(
    async (works) => {
      const group: Item[] = works.map((work) => ({ work }));
      await this.commit(group);
      return group.map((item) => item.outcome!);
    },
    { max: MAX_GROUP, oneAtATime: true },
  );

  constructor(private readonly db: Db) {}

  async submit<T>(work: GroupWork<T>): Promise<T> {
    return unsettle(await this.groups.submit(work)) as T;
  }

  /** A group of one needs no sharing; an empty one, nothing. */
  private async commit(group: Item[]): Promise<void> {
    if (group.length === 1) await this.alone(group[0]!);
    else if (group.length > 1) await this.together(group);
  }

  private async alone(item: Item): Promise<void> {
    try {
      item.outcome = { ok: true, value: await this.db.transaction().execute((trx) => inGroup(trx, () => item.work(trx))) };
    } catch (error) {
      item.outcome = { ok: false, error };
    }
  }

  /**
   * The group's items one after another in one transaction. An item that throws spoils the
   * transaction (PostgreSQL refuses the rest of it; on SQLite its earlier statements would stay), so
   * the whole is rolled back: the failed item is run again alone, for its own outcome, and the
   * others together again without it. A savepoint around each item would keep the transaction, but
   * costs two statements per item (two round trips on PostgreSQL), and items rarely fail.
   */
  private async together(group: Item[]): Promise<void> {
    const values: unknown[] = [];
    let failed = -1;
    try {
      await this.db.transaction().execute((trx) =>
        inGroup(trx, async () => {
          for (const [i, item] of group.entries()) {
            failed = i;
            values.push(await item.work(trx));
          }
          failed = -1;
        }),
      );
    } catch {
      if (failed < 0) {
        // The commit itself failed: nothing of it is committed, and each item keeps its own outcome.
        for (const item of group) await this.alone(item);
        return;
      }
      await this.alone(group[failed]!);
      await this.commit(group.filter((_, i) => i !== failed));
      return;
    }
    group.forEach((item, i) => (item.outcome = { ok: true, value: values[i] }));
  }
}

/** What the items of one group transaction share (see `groupShared`), by key. */
interface Shared {
  state: unknown;
  close: () => Promise<void>;
}

const sharedOf = new WeakMap<Db, Map<string, Shared>>();

/** Runs a group's items in `trx`, then closes what they shared, still inside the transaction. */
async function inGroup<T>(trx: Db, items: () => Promise<T>): Promise<T> {
  const shared = new Map<string, Shared>();
  sharedOf.set(trx, shared);
  try {
    const value = await items();
    for (const { close } of shared.values()) await close();
    return value;
  } finally {
    sharedOf.delete(trx);
  }
}

/**
 * State the items of one group transaction share under `key`: `open` makes it for the first item
 * that asks, and `close` runs once after the last item, inside the transaction, before it commits
 * (a write the items would each have made, made once). A group run again after an item failed
 * starts afresh. Only for the work of `inGroupCommit`.
 */
export async function groupShared<S>(trx: Db, key: string, open: () => Promise<S>, close: (state: S) => Promise<void>): Promise<S> {
  const shared = sharedOf.get(trx);
  if (!shared) throw new Error('groupShared is only for the work of inGroupCommit');
  const existing = shared.get(key);
  if (existing) return existing.state as S;
  const state = await open();
  shared.set(key, { state, close: () => close(state) });
  return state;
}

const committers = new WeakMap<Db, Committer>();

/** Runs `work` in a write transaction, possibly shared with other concurrent `inGroupCommit` calls (see above). */
export function inGroupCommit<T>(db: Db, work: GroupWork<T>): Promise<T> {
  let committer = committers.get(db);
  if (!committer) {
    committer = new Committer(db);
    committers.set(db, committer);
  }
  return committer.submit(work);
}
