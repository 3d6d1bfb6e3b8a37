/**
 * Runs async tasks one after another, in the order they were queued: a SQLite connection holds
 * one transaction at a time, and a task that awaits inside its transaction must not let another
 * task's statements into it.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    // The next task waits for this one to settle, whether it succeeded or not.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
