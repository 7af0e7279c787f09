import type { Destination } from '../destination/destination.js';
import { errorMessage } from '../errors.js';
import { isSchema1 } from '../image/media-types.js';
import { hashBytes } from '../image/reader.js';
import { schema1Payload } from '../image/schema1.js';
import type { ImageOutcome } from '../transfer/execute.js';
import { Interrupted } from '../util/stop.js';
import { reportOf, type ImageReport } from './image-report.js';

/**
 * Reads back what the destination holds for the tag: the digest is the identity. On Harbor through its REST API
 * (no pull recorded, no 412 from a pull policy: docs/architecture.md, Harbor is read through its REST API); elsewhere the manifest GET, hashed.
 * `policy` is the project's pull policy (Harbor), said in the report of an image verified despite it.
 */
export async function verifyOutcome(destination: Destination, outcome: ImageOutcome, policy: string | undefined): Promise<ImageReport> {
  const image = outcome.image;
  if (!outcome.ok) return outcome.interrupted ? reportOf(image, 'interrupted') : reportOf(image, outcome.immutable ? 'immutable' : 'failed', { reason: outcome.reason });
  const expected = outcome.convertedTo ?? image.digest;
  const notes = [outcome.note, policy && `verified through Harbor's API: project policy "${policy}" blocks pulls until Harbor allows the image`].filter(Boolean);
  const convertedTo = outcome.convertedTo;
  const note = notes.length ? notes.join('; ') : undefined;
  try {
    let digest: string | undefined;
    let destinationPushedAt: number | undefined;
    if (destination.harbor) {
      const artifact = await destination.harbor.getArtifact(image.repository, image.tag);
      digest = artifact?.digest;
      // The tag's push time as Harbor keeps it (an untagged image's: the artifact's).
      const pushTime = artifact?.tags?.find((t) => t.name === image.tag)?.push_time ?? artifact?.push_time;
      destinationPushedAt = pushTime ? Date.parse(pushTime) : undefined;
    } else {
      const served = await destination.client.getManifest(image.repository, image.tag);
      // A registry serves schema1 signed with its own key: the digest is that of the payload inside.
      if (served) digest = hashBytes(expected, isSchema1(served.mediaType) ? schema1Payload(served.bytes) : served.bytes);
    }
    if (!digest) return reportOf(image, 'failed', { convertedTo, reason: 'verification: the destination does not serve the tag after the push' });
    if (digest !== expected) return reportOf(image, 'failed', { convertedTo, reason: `verification: the destination serves digest ${digest}` });
    return reportOf(image, 'verified', { convertedTo, reason: note, destinationPushedAt });
  } catch (err) {
    if (err instanceof Interrupted) return reportOf(image, 'interrupted');
    return reportOf(image, 'failed', { reason: `verification: ${errorMessage(err)}` });
  }
}
