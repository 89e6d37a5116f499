import { CompiledQuery } from 'kysely';
import type { Db } from './index.ts';

/**
 * Group commit: small write transactions submitted while another group is committing run together
 * in the next transaction, each inside its own savepoint. A commit costs more than the few
 * statements of one upload (on SQLite the WAL append and its bookkeeping, on PostgreSQL a WAL
 * flush and a round trip), so many concurrent uploads share one.
 *
 * Each item keeps its own outcome: one that throws is rolled back to its savepoint and rejected
 * alone, the others commit. An item's promise settles only once the shared transaction has
 * committed, so a caller that was answered "done" is durable. If the shared transaction itself
 * fails (a deadlock, a lost connection), every item of the group is run again alone.
 *
 * Items must only talk to the database (no network or disk waits): the group holds the writer
 * while they run.
 */
export type GroupWork<T> = (trx: Db) => Promise<T>;

interface Item {
  work: GroupWork<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

// Compiled once: built anew, each would cost more than SQLite takes to run it.
const SAVEPOINT = CompiledQuery.raw('savepoint yunji_item');
const RELEASE = CompiledQuery.raw('release savepoint yunji_item');
const ROLLBACK = CompiledQuery.raw('rollback to savepoint yunji_item');

/** Largest group: bounds how long one transaction holds the writer. */
const MAX_GROUP = 256;

class Committer {
  private queue: Item[] = [];
  private running = false;

  constructor(private readonly db: Db) {}

  submit<T>(work: GroupWork<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) {
        this.running = true;
        // Waiting for the rest of this turn of the event loop lets the commits of other requests
        // read in the same turn join: without it, each SQLite commit finished before the next began.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        if (group.length === 1) await this.alone(group[0]!);
        else await this.together(group);
      }
    } finally {
      this.running = false;
    }
  }

  private async alone(item: Item): Promise<void> {
    try {
      item.resolve(await this.db.transaction().execute(item.work));
    } catch (err) {
      item.reject(err);
    }
  }

  private async together(group: Item[]): Promise<void> {
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const item of group) {
          await trx.executeQuery(SAVEPOINT);
          try {
            const value = await item.work(trx);
            await trx.executeQuery(RELEASE);
            outcomes.push({ ok: true, value });
          } catch (err) {
            await trx.executeQuery(ROLLBACK);
            await trx.executeQuery(RELEASE);
            outcomes.push({ ok: false, err });
          }
        }
      });
    } catch {
      // The shared transaction failed as a whole: nothing of it is committed, so each item is
      // retried on its own and keeps its own outcome.
      for (const item of group) await this.alone(item);
      return;
    }
    group.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.err);
    });
  }
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
