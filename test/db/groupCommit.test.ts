import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupShared, inGroupCommit } from '../../src/db/groupCommit.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

describe.each(kinds)('group commit on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  const tenantNamed = (name: string) => rt.core.db.selectFrom('tenants').select(['id', 'name']).where('name', '=', name).execute();
  const addTenant = (name: string) => (trx: typeof rt.core.db) =>
    trx
      .insertInto('tenants')
      .values({ name, project_key: `pk-${name}`, created_at: Date.now(), updated_at: Date.now() })
      .returning('id')
      .executeTakeFirstOrThrow();

  it('commits concurrent items together, each with its own result, and a failing one alone is rolled back', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `gc-${kind}-${i}`);
    const outcomes = await Promise.allSettled(
      names.map((name, i) =>
        inGroupCommit(rt.core.db, async (trx) => {
          const row = await addTenant(name)(trx);
          // Item 7 writes, then fails: its write must not survive, the others' must.
          if (i === 7) throw new Error('item 7 fails after writing');
          return row.id;
        }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    expect((outcomes[7] as PromiseRejectedResult).reason.message).toBe('item 7 fails after writing');
    const ids = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    expect(new Set(ids).size).toBe(19);
    for (const [i, name] of names.entries()) expect(await tenantNamed(name)).toHaveLength(i === 7 ? 0 : 1);
  });

  it("shares state among a group's items, closed once before each commit, afresh when a group is run again", async () => {
    let opened = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        inGroupCommit(rt.core.db, async (trx) => {
          const shared = await groupShared(
            trx,
            'counter',
            async () => ({ n: 0, id: ++opened }),
            // The one write of the group: what its items added up, committed with them.
            async (state) => void (await addTenant(`gs-${kind}-${state.id}-${state.n}`)(trx)),
          );
          shared.n++;
          if (i === 4) throw new Error('item 4 fails after counting');
        }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    const written = await rt.core.db.selectFrom('tenants').select('name').where('name', 'like', `gs-${kind}-%`).execute();
    // Every committed group wrote its own count once; together they count the 11 items that succeeded.
    expect(written.reduce((n, t) => n + Number(t.name.split('-').pop()), 0)).toBe(11);
    await expect(
      groupShared(
        rt.core.db,
        'x',
        async () => 1,
        async () => {},
      ),
    ).rejects.toThrow(/only for the work of inGroupCommit/);
  });

  it('several failing items in one group each fail alone, and every other item commits exactly once', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `gc-many-${kind}-${i}`);
    const failing = new Set([0, 5, 6, 17, 23]);
    const runs = new Map<number, number>();
    const outcomes = await Promise.allSettled(
      names.map((name, i) =>
        inGroupCommit(rt.core.db, async (trx) => {
          runs.set(i, (runs.get(i) ?? 0) + 1);
          const row = await addTenant(name)(trx);
          if (failing.has(i)) throw new Error(`item ${i} fails`);
          return row.id;
        }),
      ),
    );
    for (const [i, outcome] of outcomes.entries()) {
      if (failing.has(i)) expect(outcome).toMatchObject({ status: 'rejected', reason: { message: `item ${i} fails` } });
      else expect(outcome.status).toBe('fulfilled');
      expect(await tenantNamed(names[i]!)).toHaveLength(failing.has(i) ? 0 : 1);
    }
    // An item runs again only after a failure in its group: at most once per failing item, and once more for its own outcome.
    for (const count of runs.values()) expect(count).toBeLessThanOrEqual(failing.size + 1);
  });

  it('an item that breaks a constraint fails alone; the statement error reaches its caller', async () => {
    await inGroupCommit(rt.core.db, addTenant(`gc-${kind}-dup`));
    const outcomes = await Promise.allSettled([
      inGroupCommit(rt.core.db, async (trx) => {
        await trx
          .insertInto('tenants')
          .values({ name: `gc-${kind}-a`, project_key: `pk-gc-${kind}-dup`, created_at: Date.now(), updated_at: Date.now() })
          .execute();
      }),
      inGroupCommit(rt.core.db, addTenant(`gc-${kind}-b`)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled']);
    expect(await tenantNamed(`gc-${kind}-a`)).toHaveLength(0);
    expect(await tenantNamed(`gc-${kind}-b`)).toHaveLength(1);
  });
});
