/**
 * The batches of a run, each read (and asked about) while the one before it is used: `read` for the next starts as
 * soon as one is handed out, and no more than `count` are read (the first always is). A read that fails is seen when its batch is wanted.
 */
export async function* readAhead<T>(count: number, read: () => Promise<T | undefined>): AsyncGenerator<T> {
  let next = read();
  for (let index = 0; ; index++) {
    const item = await next;
    if (item === undefined) return;
    next = index + 1 < count ? read() : Promise.resolve(undefined);
    // Not awaited while this batch is used: a failure is seen when the next batch is wanted, not as unhandled.
    next.catch(() => undefined);
    yield item;
  }
}

/**
 * Batches in two stages, `read` (from the storage: it holds the event loop) then `prepare` (asking the destination),
 * each batch prepared while the one before it is used (readAhead). The read of batch k+1 starts once batch k has been
 * read and batch k-1 has been used (`used(k - 1)`): so it overlaps batch k's preparation (a read after it left the
 * destination idle between the batches of a no-op sync), and no more than two batches are held at once.
 */
export function readInStages<B, P>(count: number, read: () => Promise<B | undefined>, prepare: (batch: B) => Promise<P>): { batches: AsyncGenerator<P>; used(index: number): void } {
  const usedSignals = new Map<number, { promise: Promise<void>; resolve: () => void }>();
  const usedSignal = (index: number): { promise: Promise<void>; resolve: () => void } => {
    let signal = usedSignals.get(index);
    if (!signal) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      signal = { promise, resolve };
      usedSignals.set(index, signal);
    }
    return signal;
  };
  usedSignal(-1).resolve();
  let reading = read();
  let index = 0;
  const batches = readAhead(count, async () => {
    const k = index++;
    const batch = await reading;
    if (batch === undefined) return undefined;
    reading = usedSignal(k - 1).promise.then(read);
    // Seen when it is awaited for the next batch.
    reading.catch(() => undefined);
    usedSignals.delete(k - 2);
    return prepare(batch);
  });
  return { batches, used: (k) => usedSignal(k).resolve() };
}
