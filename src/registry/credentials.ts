/**
 * Credentials as the client uses them. Where they come from (flags, environment, the docker config and its
 * helpers) is src/destination/credentials.ts: the client reads no files.
 */
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** Where they came from, for messages (never the values). */
  readonly source: string;
}
