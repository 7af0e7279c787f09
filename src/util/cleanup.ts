/**
 * Clean-up that must happen however the process ends: the skopeo authfile (it holds user:password) and the work
 * directory. Normal ends run their own `finally`; a second SIGINT/SIGTERM, which does not wait for work under way,
 * runs what is registered here before exiting.
 */
const tasks = new Set<() => void>();

export function onCleanup(task: () => void): () => void {
  tasks.add(task);
  return () => {
    tasks.delete(task);
  };
}

export function runCleanups(): void {
  for (const task of [...tasks]) {
    tasks.delete(task);
    try {
      task();
    } catch {
      // best effort: the next task still runs
    }
  }
}
