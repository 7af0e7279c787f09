import type { PlannedImage } from '../plan/plan.js';

/**
 * The old push order, kept: within each destination repository, an image's manifests go only after those of every
 * image whose source tag was pushed before it (the source's push time: a tag link's mtime, a tar header's time),
 * oldest first, ties by tag name. Harbor stamps an artifact's `push_time` when it first creates it and a tag's when
 * it creates or moves it (docs/registry-behaviour.md, Harbor policies), and "retain the most recently pushed N" ranks
 * by them. Only the manifests wait: blobs, and other repositories, go in parallel. Referrers (with a `subject`) are
 * left out: they wait for their subject instead (subjects.ts), and Harbor's retention does not rank them.
 */
export class PushTimeOrder {
  readonly #after = new Map<PlannedImage, Promise<void>>();
  readonly #done = new Map<PlannedImage, () => void>();

  constructor(images: readonly PlannedImage[]) {
    const byRepository = new Map<string, PlannedImage[]>();
    for (const image of images) {
      if (image.subject) continue;
      let list = byRepository.get(image.repository);
      if (!list) byRepository.set(image.repository, (list = []));
      list.push(image);
    }
    for (const list of byRepository.values()) {
      list.sort(byPushTime);
      let previous: Promise<void> = Promise.resolve();
      for (const image of list) {
        this.#after.set(image, previous);
        let resolve: () => void = () => undefined;
        previous = new Promise<void>((r) => (resolve = r));
        this.#done.set(image, resolve);
      }
    }
  }

  /** Resolves once every image pushed before this one in the source is done with its manifests (landed or failed). */
  turn(image: PlannedImage): Promise<void> {
    return this.#after.get(image) ?? Promise.resolve();
  }

  /** The image is done (its manifests landed, or it failed before them): the next one may go. */
  done(image: PlannedImage): void {
    this.#done.get(image)?.();
  }
}

/**
 * The images oldest first by source push time, ties by tag name (a copy): the order their manifests can go in, so
 * the order to send the small blobs they need in (transfer/execute.ts uploadOrder).
 */
export function inPushOrder(images: readonly PlannedImage[]): PlannedImage[] {
  return [...images].sort(byPushTime);
}

function byPushTime(a: PlannedImage, b: PlannedImage): number {
  return pushTime(a) - pushTime(b) || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
}

/** The source push time in ms; an image without one goes first. */
function pushTime(image: PlannedImage): number {
  return image.pushedAt ? Date.parse(image.pushedAt) : Number.NEGATIVE_INFINITY;
}
