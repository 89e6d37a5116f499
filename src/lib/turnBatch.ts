/**
 * Items submitted in one turn of the event loop, handled together: `handle` gets up to `max` of
 * them and answers one outcome per item, in their order. A statement and its commit or round trip
 * cost more than an item, and concurrent requests submit in the same turn. A batch that fails as a
 * whole is handled again item by item, so each item keeps its own outcome (`onBatchFailed` hears
 * of the failure first).
 */
export class TurnBatch<I, O> {
  private queue: { item: I; resolve: (outcome: O) => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly handle: (items: I[]) => Promise<O[]>,
    private readonly max: number,
    private readonly onBatchFailed?: (err: unknown, size: number) => void,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => void this.flush());
      this.queue.push({ item, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.max);
      try {
        const outcomes = await this.handle(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(outcomes[i]!));
      } catch (err) {
        this.onBatchFailed?.(err, batch.length);
        for (const b of batch) {
          try {
            b.resolve((await this.handle([b.item]))[0]!);
          } catch (one) {
            b.reject(one);
          }
        }
      }
    }
  }
}
