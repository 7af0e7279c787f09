import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, UsageError } from '../errors.js';

interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock file (`O_CREAT|O_EXCL`) holding its owner's pid and host. A lock left by a process on this host
 * that is gone (killed, crashed) is stale and taken over; a live owner makes us wait up to `waitSeconds`, then fail
 * with LockedError. Returns the release function.
 */
export async function acquireLock(file: string, waitSeconds: number): Promise<() => void> {
  const deadline = Date.now() + waitSeconds * 1000;
  const me: LockOwner = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
  try {
    mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    throw new UsageError(`lock ${file}: its directory cannot be created (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'choose a writable place with --lock or --state');
  }
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, JSON.stringify(me) + '\n');
      closeSync(fd);
      return () => {
        const owner = readOwner(file);
        if (owner?.pid === me.pid && owner.hostname === me.hostname) unlinkSync(file);
      };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new UsageError(`lock ${file}: cannot be created (${code ?? 'error'})`, 'choose a writable place with --lock or --state');
    }
    const owner = readOwner(file);
    if (!owner || (owner.hostname === me.hostname && !isAlive(owner.pid))) {
      // Stale: its process is gone (or it was never written completely). Take it over.
      try {
        unlinkSync(file);
      } catch {
        // another process took it over first: go round again
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LockedError(
        `locked: another sync (pid ${owner.pid} on ${owner.hostname}, since ${owner.startedAt}) holds ${file}`,
        'it is still running; try again later, or give --wait-lock SECONDS',
      );
    }
    await sleep(Math.min(1000, Math.max(50, deadline - Date.now())));
  }
}
