/**
 * Advisory flock(2) locks, through the fs-ext addon because Node has no flock.
 *
 * Two locks exist per log:
 * - the log's lock file `STEM.jsonl.lock`, shared with writers: cleanup holds it
 *   exclusively for the few milliseconds of each rename, a writer for each append;
 * - the log directory itself, held by a real cleanup for its whole run, so that a
 *   second cleanup in any process gets CLEANUP_RUNNING instead of racing the first.
 */

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import fsExt from 'fs-ext';

import { ErrorCode, RetentionError, fromFileSystemError } from './errors.js';

/** First and largest pause between two attempts to take a busy lock, in ms. */
const FIRST_RETRY_DELAY_MS = 1;
const MAX_RETRY_DELAY_MS = 20;

function isBusy(error: unknown): boolean {
  const errno = (error as NodeJS.ErrnoException).code;
  return errno === 'EWOULDBLOCK' || errno === 'EAGAIN';
}

/** Takes an exclusive flock on `fd` without blocking; returns false when another descriptor holds it. */
export function tryLockExclusive(fd: number): boolean {
  try {
    fsExt.flockSync(fd, 'exnb');
    return true;
  } catch (error) {
    if (isBusy(error)) {
      return false;
    }
    throw error;
  }
}

export function unlock(fd: number): void {
  fsExt.flockSync(fd, 'un');
}

/**
 * Polls for an exclusive flock on `fd` until `timeoutMs` passes. Returns the time
 * waited in ms, or -1 on timeout. flock(2) has no timed form and a blocking call
 * would hold a libuv thread, hence the polling with growing pauses.
 */
export async function lockExclusiveWithin(fd: number, timeoutMs: number): Promise<number> {
  const startedAt = performance.now();
  let delayMs = FIRST_RETRY_DELAY_MS;
  for (;;) {
    if (tryLockExclusive(fd)) {
      return performance.now() - startedAt;
    }
    const waitedMs = performance.now() - startedAt;
    if (waitedMs >= timeoutMs) {
      return -1;
    }
    await sleep(Math.min(delayMs, timeoutMs - waitedMs));
    delayMs = Math.min(delayMs * 2, MAX_RETRY_DELAY_MS);
  }
}

/** The lock file shared with writers, opened once per run. */
export class LogLock {
  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    private readonly timeoutMs: number,
  ) {}

  /** Opens (and creates once, mode 0664 before umask) the lock file at `path`. */
  static async open(path: string, timeoutMs: number): Promise<LogLock> {
    try {
      // Read-only would do for flock, but creating the file needs write access to the directory anyway.
      const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o664);
      return new LogLock(handle, path, timeoutMs);
    } catch (error) {
      throw fromFileSystemError(error, 'open the lock file', path);
    }
  }

  /**
   * Runs `critical` while holding the lock exclusively. Throws LOG_LOCKED naming
   * `filePath` when another process keeps the lock longer than the timeout.
   */
  async hold<T>(filePath: string, critical: (waitedMs: number) => Promise<T>): Promise<T> {
    const waitedMs = await lockExclusiveWithin(this.handle.fd, this.timeoutMs);
    if (waitedMs < 0) {
      throw new RetentionError(
        ErrorCode.LOG_LOCKED,
        `Log file locked: ${filePath}. Another process held ${this.path} for more than ${this.timeoutMs} ms; retry later, or raise lock_timeout_ms in the config (lockTimeoutMs for one request).`,
        { retryAfterSeconds: Math.max(1, Math.ceil(this.timeoutMs / 1000)) },
      );
    }
    try {
      return await critical(waitedMs);
    } finally {
      unlock(this.handle.fd);
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * Takes the run lock on the log directory without waiting. Returns a release
 * function, or throws CLEANUP_RUNNING when another cleanup holds it.
 */
export async function acquireRunLock(directory: string): Promise<() => Promise<void>> {
  let handle: FileHandle;
  try {
    handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    throw fromFileSystemError(error, 'open the log directory', directory);
  }

  if (!tryLockExclusive(handle.fd)) {
    await handle.close();
    throw new RetentionError(
      ErrorCode.CLEANUP_RUNNING,
      `A cleanup of ${directory} is already running. Wait for it to finish, then retry.`,
      { retryAfterSeconds: 5 },
    );
  }
  return async () => {
    unlock(handle.fd);
    await handle.close();
  };
}
