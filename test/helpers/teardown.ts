/**
 * End-of-file clean-up that works wherever a helper is called: `afterAll` registered inside an `it` is never run,
 * which left a temp directory (and a registry process) behind per call. Helpers queue their clean-up here; one
 * `afterAll`, registered when a test file first imports this module, runs the queue, newest first.
 */
import { afterAll } from 'vitest';

const queue: Array<() => unknown> = [];

export function atEnd(task: () => unknown): void {
  queue.push(task);
}

afterAll(async () => {
  while (queue.length > 0) {
    const task = queue.pop()!;
    try {
      await task();
    } catch {
      // best effort: the rest still run
    }
  }
});
