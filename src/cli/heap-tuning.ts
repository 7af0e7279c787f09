import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { HEAP_CHECK_INTERVAL_MS, HEAP_GROWING_PERCENT, LARGE_HEAP_BYTES } from '../tuning.js';

/**
 * Keeps a large run's resident memory near what is live: once the heap passes LARGE_HEAP_BYTES, V8 grows it by
 * HEAP_GROWING_PERCENT before each full collection instead of up to 2× (the figures are in src/tuning.ts).
 *
 * V8 only takes this as a flag (`--heap-growing-percent`), and Node refuses it in NODE_OPTIONS, so a flag given at
 * start would have to be in the `node` command line, where it would also slow a push of large blobs from the
 * first byte. It is therefore set at run time with `v8.setFlagsFromString`, which Node documents as possibly
 * unpredictable after the VM has started; V8 reads this flag each time it sizes the heap after a collection, and
 * the measured peaks show it takes effect. The flag stays set for the rest of the process.
 */

let limited = false;

/** True once the heap's growth has been limited in this process. */
export function heapGrowthLimited(): boolean {
  return limited;
}

/** Watches the heap until it is large, then limits its growth. Returns the function that stops watching. */
export function startHeapTuning(): () => void {
  const check = (): boolean => {
    if (limited) return true;
    if (getHeapStatistics().total_heap_size < LARGE_HEAP_BYTES) return false;
    setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
    limited = true;
    return true;
  };
  if (check()) return () => {};
  const watch = setInterval(() => {
    if (check()) clearInterval(watch);
  }, HEAP_CHECK_INTERVAL_MS).unref();
  return () => clearInterval(watch);
}
