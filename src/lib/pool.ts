/** Runs tasks with at most `limit` at once; `add` waits for a free slot, so the producer never runs far ahead. */
export class Pool {
  private readonly running = new Set<Promise<void>>();
  constructor(private readonly limit: number) {}

  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    const p: Promise<void> = task().finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }
}

/** Runs `work` over `items` with at most `limit` at once; the first failure stops new work and is thrown once the running work has ended. */
export async function eachLimited<T>(items: AsyncIterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const pool = new Pool(limit);
  let failure: unknown;
  try {
    for await (const item of items) {
      if (failure) break;
      // Waiting for a slot, another item may fail: this one is then not started.
      await pool.add(async () => {
        if (failure) return;
        await work(item).catch((err: unknown) => {
          failure ??= err;
        });
      });
    }
  } finally {
    // Also when `items` fails: nothing is still writing once this returns.
    await pool.drain();
  }
  if (failure) throw failure;
}
