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
