/**
 * Runs the given work one piece at a time, in the order asked. A worker's writes to the rows of the
 * jobs it holds (heartbeats, recorded outcomes) go through one of these: on PostgreSQL two
 * multi-row updates of the same rows, from two connections of the pool, can lock them in different
 * orders and deadlock (suspected behind jobs once left `running` in CI until their lease ran out);
 * one after the other, they cannot.
 */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
