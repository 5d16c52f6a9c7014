/**
 * Runs async jobs one at a time, in order. One queue per account: two overlapping syncs
 * must never feed the machine or run the outgoing-request loop at the same time.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job, job);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
