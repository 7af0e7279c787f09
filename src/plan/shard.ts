import { createHash } from 'node:crypto';
import type { MappedName } from './map-names.js';

/** `--shard k/n`: this worker takes the repositories whose stable hash falls on k (0-based, as Kubernetes'
 * `JOB_COMPLETION_INDEX`). By repository (default) or by project, so a project's shared layers stay in one shard. */
export interface Shard {
  readonly index: number;
  readonly count: number;
  readonly by: 'repository' | 'project';
}


/** sha256 of the key, first 4 bytes: the same on every machine and every run, unlike a process-seeded hash. */
export function shardOf(destinationRepository: string, count: number, by: Shard['by']): number {
  const key = by === 'project' ? destinationRepository.split('/')[0]! : destinationRepository;
  return createHash('sha256').update(key).digest().readUInt32BE(0) % count;
}

export function inShard(destinationRepository: string, shard: Shard): boolean {
  return shardOf(destinationRepository, shard.count, shard.by) === shard.index;
}

/** `k/n` → a shard, or the reason it is not one. */
/** Shards a run may be split into (`--shard k/n`, `--shards n`). */
export const MAX_SHARDS = 10_000;

export function parseShard(text: string, by: Shard['by']): Shard | string {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) return `--shard "${text}" is not k/n (like 0/4)`;
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || count > MAX_SHARDS) return `--shard ${text}: n must be from 1 to ${MAX_SHARDS}`;
  if (index >= count) return `--shard ${text}: k counts from 0, so it must be below n (0 to ${count - 1})`;
  return { index, count, by };
}

/** A shard takes repositories by their destination name; a name that cannot be mapped goes to shard 0 (reported there). */
export function shardSelector(map: (source: string) => MappedName, shard: Shard): (repository: string) => boolean {
  return (repository) => {
    const mapped = map(repository);
    return mapped.ok ? inShard(mapped.repository, shard) : shard.index === 0;
  };
}

