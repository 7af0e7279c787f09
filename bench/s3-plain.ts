/**
 * The S3 plain reader (bench/s3.ts minimalScan) as its own process, so that it is measured as regmigrate is: a whole
 * process, its own start-up and its own CPU. The store's address and credentials come from the environment
 * (S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never the command line.
 *
 * usage: node dist/bench/s3-plain.js BUCKET ROOT IN_FLIGHT
 * Prints one JSON line: { requests, tags, manifests }.
 */
import { minimalScan } from './s3.js';

const [bucket, root, inFlightArg] = process.argv.slice(2);
const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`s3-plain.js: ${name} is not set`);
  return value;
};
if (bucket === undefined || root === undefined) throw new Error('usage: s3-plain.js BUCKET ROOT IN_FLIGHT');
const counted = await minimalScan(
  { endpoint: env('S3_ENDPOINT'), region: env('AWS_REGION'), accessKey: env('AWS_ACCESS_KEY_ID'), secretKey: env('AWS_SECRET_ACCESS_KEY') },
  bucket,
  root,
  Number(inFlightArg ?? 64),
);
process.stdout.write(`${JSON.stringify(counted)}\n`);
