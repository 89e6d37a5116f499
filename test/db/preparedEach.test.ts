import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.ts';
import { preparedEach, type RowValues } from '../../src/db/prepared.ts';
import { JsonArrayBytes } from '../../src/lib/jsonBytes.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

const kinds = await databaseKinds();

// Numbers 1..n with their text and a string of `width` characters, made by the database; the last row divides by zero when asked.
const numbers = preparedEach((db: Db, n: number, failAt: number) => ({
  compile: () =>
    sql`with recursive s(i) as (select 1 union all select i + 1 from s where i < ${n})
        select i, 'n' || i as name, 10 / (i - ${failAt}) as quotient from s order by i`.compile(db),
}));

describe.each(kinds)('preparedEach on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  const collect = async (n: number, failAt = -1) => {
    const rows: RowValues[] = [];
    await numbers(rt.core.db, (row) => rows.push(row), n, failAt);
    return rows;
  };

  it('hands each row over as an array of its columns, in order', async () => {
    const rows = await collect(2500);
    expect(rows).toHaveLength(2500);
    expect(rows[0]).toEqual([1, 'n1', 10 / (1 + 1)]);
    expect(rows.map((r) => r[0])).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
  });

  it('rejects with the error onRow throws, once the rows end, and the connection serves the next query', async () => {
    let seen = 0;
    const run = numbers(
      rt.core.db,
      () => {
        seen++;
        if (seen === 3) throw new Error('row 3 is refused');
      },
      10,
      -1,
    );
    await expect(run).rejects.toThrow('row 3 is refused');
    expect(seen).toBe(3);
    expect(await collect(5)).toHaveLength(5);
  });

  it('rejects with the database error of a row, and the next query still runs', async () => {
    // SQLite answers a division by zero with null; PostgreSQL refuses the statement.
    if (kind === 'postgres') await expect(collect(10, 4)).rejects.toThrow(/division by zero/);
    else expect((await collect(10, 4))[3]).toEqual([4, 'n4', null]);
    expect(await collect(3)).toHaveLength(3);
    // Every pool connection was given back (a leaked one would leave the pool short after ten).
    for (let i = 0; i < 12; i++)
      await expect(
        numbers(
          rt.core.db,
          () => {
            throw new Error('again');
          },
          2,
          -1,
        ),
      ).rejects.toThrow('again');
    expect(await collect(2)).toHaveLength(2);
  });
});

describe('JsonArrayBytes', () => {
  it('joins elements with commas as UTF-8, growing past the room it started with', () => {
    const bytes = new JsonArrayBytes(8);
    const elements = ['{"a":1}', '"é/日本/🎉"', '[]', JSON.stringify('x'.repeat(5000))];
    for (const e of elements) bytes.push(e);
    expect(bytes.bytes().toString('utf8')).toBe(elements.join(','));
    expect(JSON.parse(`[${bytes.bytes().toString('utf8')}]`)).toEqual(elements.map((e) => JSON.parse(e) as unknown));
  });

  it('is empty with no elements', () => {
    expect(new JsonArrayBytes(0).bytes().length).toBe(0);
  });
});
