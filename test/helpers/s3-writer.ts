/** The fixtures' S3 writer (fixtures/s3-writer.ts), closed when the test file ends. */
import { s3Writer as fixtureWriter, type S3Account, type S3Writer } from '../../fixtures/s3-writer.js';
import { atEnd } from './teardown.js';

export type { S3Account, S3Writer };

export function s3Writer(account: S3Account): S3Writer {
  const writer = fixtureWriter(account);
  atEnd(() => writer.close());
  return writer;
}
