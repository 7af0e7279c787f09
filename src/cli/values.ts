import { validSemverRange, parseTagPattern } from '../inventory/select.js';
import { parseMapRule, PROJECT_NAME_RE } from '../plan/map-names.js';
import { parseShard } from '../plan/shard.js';
import { parseEndpoint } from '../registry/endpoint.js';
import { reportFormat } from '../report/push-report.js';
import { parseSize } from '../util/format.js';
import { globProblem } from '../util/glob.js';
import { WHOLE_RANGES, inRange, type WholeSetting } from './ranges.js';
import { parseWhen } from './selection.js';
import { s3EndpointProblem, s3RegionProblem } from '../storage/open.js';

/**
 * What is wrong with one option's value, or undefined: one check for the flag and for its key in `--config`, so
 * `config check` refuses what a run would refuse. The text follows the value: `--semver ">=1 <<<" is not …` on
 * the command line, `selection.semver: ">=1 <<<" is not …` for the file. Checks that need other options too
 * (`--username` needs `--password-stdin`) stay with the commands.
 */
export type ValueCheck = (value: string) => string | undefined;

/** A message of the parsers that name their flag (`--map "x" is not from=to`), told of the value alone. */
const withoutFlag = (message: string): string => message.replace(/^--[a-z-]+ (?:"[^"]*"|\S+?):? /, '');

/** The range checks of every whole-number setting, from the table the flags are checked against too. */
const WHOLE_CHECKS: Record<string, ValueCheck> = Object.fromEntries(
  Object.entries(WHOLE_RANGES).map(([setting, { min, max }]) => [setting, (value: string) => (inRange(setting as WholeSetting, value) ? undefined : `is not a whole number from ${min} to ${max}`)]),
);

export const VALUE_CHECKS: Readonly<Record<string, ValueCheck>> = {
  ...WHOLE_CHECKS,
  to: (value) => {
    try {
      parseEndpoint(value);
      return undefined;
    } catch (err) {
      return `is not a registry address: ${(err as Error).message}`;
    }
  },
  s3Endpoint: s3EndpointProblem,
  s3Region: s3RegionProblem,
  chunkSize: (value) => ((parseSize(value) ?? 0) >= 1024 * 1024 ? undefined : 'is not a size of at least 1MiB (like 16MiB)'),
  limitRate: (value) => ((parseSize(value.replace(/\/s$/i, '')) ?? 0) >= 1024 ? undefined : 'is not a rate of at least 1KiB/s (like 50MiB/s)'),
  include: (value) => (value.trim() === '' || /[\s\\]/.test(value) ? 'is not a repository glob' : globProblem(value)),
  exclude: (value) => (value.trim() === '' || /[\s\\]/.test(value) ? 'is not a repository glob' : globProblem(value)),
  map: (value) => {
    const rule = parseMapRule(value);
    return typeof rule === 'string' ? withoutFlag(rule) : undefined;
  },
  defaultProject: (value) => (PROJECT_NAME_RE.test(value) ? undefined : 'is not a valid project name'),
  tagInclude: (value) => {
    const pattern = parseTagPattern(value);
    return typeof pattern === 'string' ? pattern : undefined;
  },
  tagExclude: (value) => {
    const pattern = parseTagPattern(value);
    return typeof pattern === 'string' ? pattern : undefined;
  },
  semver: (value) => (validSemverRange(value) ? undefined : "is not a version range (like '>=1.2 <2' or '^3')"),
  pushedAfter: (value) => (parseWhen(value) === undefined ? 'is neither a date (2024-01-01) nor a duration (90d, 12h, 2w, 30m)' : undefined),
  shard: (value) => {
    const shard = parseShard(value, 'repository');
    return typeof shard === 'string' ? withoutFlag(shard) : undefined;
  },
  storageLimit: (value) => (value === '-1' || parseSize(value) !== undefined ? undefined : 'is not a size (like 500GiB) or -1'),
  output: (value) => (['table', 'json', 'csv', 'html'].includes(value) ? undefined : 'is not table, json, csv or html'),
  report: (value) => (reportFormat(value) ? undefined : 'must end in .json or .csv'),
  metricsFile: (value) => (value.endsWith('.prom') ? undefined : 'must end in .prom (the textfile collector reads only those)'),
  pushgateway: (value) => (/^https?:\/\/[^/\s]+/.test(value) ? undefined : 'is not an http:// or https:// URL'),
};
