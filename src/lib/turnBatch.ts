/**
 * The one way Yunji batches work per turn of the event loop: items submitted in one turn are
 * handled together, since a statement and its commit, a round trip or a thread hand-off cost more
 * than an item, and concurrent requests submit in the same turn. `handle` gets up to `max` of them
 * and answers one outcome per item, in their order. A batch that fails as a whole is handled again
 * item by item, so each item keeps its own outcome (`onBatchFailed` hears of the failure first).
 * With `oneAtATime`, a batch starts only once the one before has been handled (what arrives
 * meanwhile forms the next): for a resource with one writer.
 */
export interface TurnBatchOptions {
  max: number;
  oneAtATime?: boolean;
  onBatchFailed?: (err: unknown, size: number) => void;
}

export class TurnBatch<I, O> {
  private queue: { item: I; resolve: (outcome: O) => void; reject: (err: unknown) => void }[] = [];
  private flushing = false;

  constructor(
    private readonly handle: (items: I[]) => Promise<O[]>,
    private readonly options: TurnBatchOptions,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      const idle = this.options.oneAtATime ? !this.flushing : this.queue.length === 0;
      if (idle) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
      this.queue.push({ item, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.options.max);
        try {
          const outcomes = await this.handle(batch.map((b) => b.item));
          batch.forEach((b, i) => b.resolve(outcomes[i]!));
        } catch (err) {
          this.options.onBatchFailed?.(err, batch.length);
          for (const b of batch) {
            try {
              b.resolve((await this.handle([b.item]))[0]!);
            } catch (one) {
              b.reject(one);
            }
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

/** An item's own outcome, for a handler that settles each item itself (one failing item does not fail the batch). */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

/** The value of a settled outcome, or its error thrown. */
export function unsettle<O>(outcome: Settled<O>): O {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}
