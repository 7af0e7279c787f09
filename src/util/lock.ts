import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, UsageError } from '../errors.js';
import { writeWhole } from './files.js';
import type { OnNotice } from './notice.js';
import { LOCK_HEARTBEAT_MAX_MS } from '../tuning.js';

interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
  /** Tells this run's lock from any other, whatever pid and host say (every pod is pid 1). */
  token?: string;
}

export interface LockOptions {
  /** Wait this long for a live holder (0: fail at once). */
  readonly waitSeconds: number;
  /** A lock whose heartbeat is older than this is stale, whichever host holds it (`--lock-stale`). */
  readonly staleSeconds: number;
  /** The name recorded as the holder's host (default: this host's name). */
  readonly hostname?: string;
  /** Told when a stale lock is taken over, or when this run's lease was lost. */
  readonly onNotice?: OnNotice;
}

export interface Lease {
  /** Stops the heartbeat and removes the lock, if it is still ours. */
  release(): void;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof parsed.pid !== 'number' || typeof parsed.hostname !== 'string') return undefined;
    return parsed as LockOwner;
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

function ageMs(file: string): number | undefined {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // gone already
  }
}

/**
 * Writes the owner to a file of its own, flushed, so the lock appears whole or not at all. A failed write, flush or
 * close (ENOSPC, EDQUOT, EIO) removes the half-written file: nothing is left behind beside the lock.
 */
function writeOwnerFile(file: string, owner: LockOwner): void {
  const fd = openSync(file, 'wx', 0o644);
  try {
    try {
      writeWhole(fd, JSON.stringify(owner) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    unlinkQuietly(file);
    throw err;
  }
}

/**
 * A lease on `file`, for a sync that may run on any host (a Kubernetes pod gets a new hostname every time, and
 * node runs as pid 1 in it). The lock is created whole: its content goes to a temp file that is then `link()`ed
 * into place, so nobody ever reads an empty owner. While the run lives, a heartbeat renews the file's mtime.
 * A lock is stale when its heartbeat is older than `staleSeconds` (from any host), or at once when its holder is a
 * dead process on this host. Taking over renames the stale file aside first: of several waiters only one rename
 * succeeds, and the winner re-checks that what it moved was the stale lock (not a new one) before deleting it.
 * A live holder makes us wait up to `waitSeconds`, then fail with LockedError (exit 4).
 */
export async function acquireLock(file: string, options: LockOptions): Promise<Lease> {
  const staleMs = options.staleSeconds * 1000;
  const deadline = Date.now() + options.waitSeconds * 1000;
  const me: LockOwner = { pid: process.pid, hostname: options.hostname ?? osHostname(), startedAt: new Date().toISOString(), token: randomUUID() };
  const fail = (what: string, err: unknown): UsageError =>
    new UsageError(`lock ${file}: ${what} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'choose a writable place with --lock or --state');
  try {
    mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    throw fail('its directory cannot be created', err);
  }
  const temp = `${file}.${me.token}.tmp`;
  for (;;) {
    try {
      writeOwnerFile(temp, me);
    } catch (err) {
      throw fail('cannot be created', err);
    }
    try {
      linkSync(temp, file);
      unlinkQuietly(temp);
      return startHeartbeat(file, me, staleMs, options.onNotice);
    } catch (err) {
      unlinkQuietly(temp);
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail('cannot be created', err);
    }

    const owner = readOwner(file);
    const age = ageMs(file);
    if (age === undefined) continue; // released meanwhile: try again at once
    const deadHere = owner !== undefined && owner.hostname === me.hostname && !isAlive(owner.pid);
    if (deadHere || age > staleMs) {
      const aside = `${file}.${me.token}.stale`;
      try {
        renameSync(file, aside);
      } catch {
        continue; // another waiter moved it first
      }
      const moved = readOwner(aside);
      const movedAge = ageMs(aside) ?? 0;
      const same = moved?.token === owner?.token && moved?.pid === owner?.pid && moved?.hostname === owner?.hostname;
      if ((same && deadHere) || movedAge > staleMs) {
        unlinkQuietly(aside);
        const who = owner ? `pid ${owner.pid} on ${owner.hostname}, since ${owner.startedAt}` : 'an unreadable owner';
        options.onNotice?.({ level: 'info', message: `took over the lock ${file} from ${who}: ${deadHere ? 'that process is gone' : `no heartbeat for ${Math.round(age / 1000)} s`}` });
        continue;
      }
      // We moved a lock taken a moment ago by another waiter: give it back.
      try {
        linkSync(aside, file);
      } catch {
        // someone else holds the lock now; the one we moved will notice its loss at its next heartbeat
      }
      unlinkQuietly(aside);
    }
    if (Date.now() >= deadline) {
      const who = owner ? `pid ${owner.pid} on ${owner.hostname}, since ${owner.startedAt}` : 'an owner not written yet';
      throw new LockedError(
        `locked: another sync (${who}, heartbeat ${Math.round(age / 1000)} s ago) holds ${file}`,
        `it is still running; try again later, or give --wait-lock SECONDS (a holder without heartbeat for ${options.staleSeconds} s is taken over)`,
      );
    }
    await sleep(Math.min(1000, Math.max(50, deadline - Date.now())));
  }
}

/** Renews the lease's mtime a few times per lease time, and notices when the lock is not ours any more. */
function startHeartbeat(file: string, me: LockOwner, staleMs: number, onNotice: OnNotice | undefined): Lease {
  let lost = false;
  const beat = (): void => {
    if (lost) return;
    if (readOwner(file)?.token !== me.token) {
      lost = true;
      onNotice?.({ level: 'warn', message: `warning: the lock ${file} was taken over by another run (no heartbeat seen for too long?)` });
      return;
    }
    try {
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      // a passing I/O error: the next beat tries again
    }
  };
  const timer = setInterval(beat, Math.max(200, Math.min(LOCK_HEARTBEAT_MAX_MS, staleMs / 4)));
  timer.unref();
  return {
    release: () => {
      clearInterval(timer);
      if (readOwner(file)?.token === me.token) unlinkQuietly(file);
    },
  };
}
