import type { PlannedImage } from '../plan/plan.js';

/**
 * Referrers (signatures, SBOMs, anything with a `subject`) go after the image they refer to: an image's manifest
 * waits until its subject, when the same plan pushes it into the same repository, is done (landed or failed).
 */
export class SubjectOrder {
  readonly #landed = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  constructor(images: readonly PlannedImage[]) {
    for (const image of images) {
      const key = `${image.repository}@${image.digest}`;
      if (this.#landed.has(key)) continue;
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#landed.set(key, { promise, resolve });
    }
  }

  /** Resolves once the image's subject is done; at once when it has none, or when this plan does not push it. */
  async subjectOf(image: PlannedImage): Promise<void> {
    if (image.subject) await this.#landed.get(`${image.repository}@${image.subject}`)?.promise;
  }

  /** Pushes the image, then lets the images that refer to it go, whatever the outcome. */
  async land<T>(image: PlannedImage, push: () => Promise<T>): Promise<T> {
    try {
      return await push();
    } finally {
      this.#landed.get(`${image.repository}@${image.digest}`)?.resolve();
    }
  }
}
