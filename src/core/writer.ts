/**
 * The lock-aware writer: appends records to a configured log so that they survive
 * a concurrent cleanup, a crash and a full disk.
 *
 * Protocol, shared with the cleanup and with `flock DIR/STEM.jsonl.lock -c '... >> DIR/STEM.jsonl'`:
 * - Every batch is written under the exclusive flock(2) of `STEM.jsonl.lock`. The
 *   writer keeps that file open for its whole life, so the cleanup's /proc check
 *   counts it as a writer that takes part in locking.
 * - Under the lock, before writing, the writer compares the inode of the descriptor
 *   it keeps with the inode at its path. It reopens the path when the cleanup
 *   replaced the file or removed it.
 * - A batch is one write(2) on an O_APPEND descriptor, so a crash can leave at most
 *   the last line cut short. The next batch first ends such a line with a line feed,
 *   so the cut record stays a malformed line of its own (the cleanup keeps it) and
 *   never merges with the next record.
 *
 * Appends are grouped: calls made while a batch is being written share the next
 * write and the next fsync (group commit), so a failed write rejects every call of
 * its group. With the `always` fsync policy a call resolves only after its batch
 * is fsynced.
 */

import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

import { DEFAULT_FSYNC_POLICY, DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_MAX_FILE_SIZE } from '../config/defaults.js';
import type { ProfileSettings } from '../config/load.js';
import { fsyncDirectory } from './durable.js';
import { ErrorCode, RetentionError, fromFileSystemError } from './errors.js';
import { isDirectory, lockPathFor, logNames } from './layout.js';
import { LogLock } from './lock.js';
import { activeFilePath, createNextSegment, openForAppend, type AppendTarget } from './log-target.js';
import type { Logger } from './logger.js';
import { RecordPreparer, type AuditRecordInput, type PreparedRecords } from './record-lines.js';

/**
 * When a batch counts as on disk:
 * - `always`: fdatasync(2) after each batch, before its calls resolve. A power loss loses no acknowledged record.
 * - `interval`: calls resolve after write(2), and fdatasync runs at most FSYNC_INTERVAL_MS after a write, and on
 *   close and reopen. A process crash loses nothing, a power loss or kernel crash up to that interval.
 * - `none`: the kernel writes back when it chooses, so a power loss may lose any record not yet written back.
 */
export type FsyncPolicy = 'always' | 'interval' | 'none';

export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'interval', 'none'];

export { DEFAULT_FSYNC_POLICY };

/** Maximum time a write stays without fdatasync under the `interval` policy, in ms. */
export const FSYNC_INTERVAL_MS = 1000;

/** Maximum size of a group of queued calls written with one write(2), in bytes. A single larger call is still written alone in one. */
export const DEFAULT_MAX_WRITE_BYTES = 4 * 1024 * 1024;

const LINE_FEED = Buffer.from('\n');

export interface AuditLogWriterOptions {
  /** The configured log path `DIR/STEM.jsonl`, whose directory must exist. */
  logPath: string;
  /** Profile name, used only in messages. */
  profile?: string;
  /** Size in bytes above which a batch goes to a new segment. Default 50 MiB. */
  maxFileSize?: number;
  /** Maximum wait for the lock per batch, in ms. A longer wait fails with LOG_LOCKED. Default 5000. */
  lockTimeoutMs?: number;
  fsync?: FsyncPolicy;
  /** Member that contains the timestamp, filled in when missing. Default `timestamp`. */
  timestampField?: string;
  /** Unit of numeric timestamps, used to check them. Default `ms`. */
  timestampUnit?: 'ms' | 's';
  /** Clock for filled-in timestamps and segment names, in epoch ms. Default Date.now. */
  now?: () => number;
  maxWriteBytes?: number;
  logger?: Logger;
}

export interface AppendResult {
  /** Records appended by this call. */
  records: number;
  /** Absolute path of the file they went to. */
  path: string;
  /** Time the batch waited for the lock, in ms. */
  lockWaitMs: number;
}

/** Returns the writer options of a configured profile. */
export function writerOptionsFor(profile: ProfileSettings, now?: () => number, logger?: Logger): AuditLogWriterOptions {
  return {
    logPath: profile.logPath,
    profile: profile.name,
    maxFileSize: profile.maxFileSize,
    lockTimeoutMs: profile.lockTimeoutMs,
    fsync: profile.fsync,
    timestampField: profile.timestampField,
    timestampUnit: profile.timestampUnit,
    now,
    logger,
  };
}

interface QueuedAppend {
  prepared: PreparedRecords;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

type ResolvedOptions = Required<Omit<AuditLogWriterOptions, 'logger'>> & { logger: Logger | undefined };

export class AuditLogWriter {
  private target: AppendTarget | null = null;
  private reopenRequested = false;
  private readonly queue: QueuedAppend[] = [];
  private flushScheduled = false;
  /** End of the chain of serial jobs: batches, periodic fsyncs and the final close. */
  private tail: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  /** Bytes written since the last fdatasync, under the `interval` policy. */
  private unsynced = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private readonly preparer: RecordPreparer;

  private constructor(
    private readonly options: ResolvedOptions,
    private readonly lock: LogLock,
  ) {
    this.preparer = new RecordPreparer({ timestampField: options.timestampField, timestampUnit: options.timestampUnit }, options.now);
  }

  /**
   * Opens the lock file (creating it once) and returns a writer. The log file itself
   * is chosen and opened under the lock by the first batch. Throws LOG_DIR_MISSING
   * when the log's directory does not exist.
   */
  static async open(options: AuditLogWriterOptions): Promise<AuditLogWriter> {
    const resolved: ResolvedOptions = {
      logPath: options.logPath,
      profile: options.profile ?? 'default',
      maxFileSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
      lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
      fsync: options.fsync ?? DEFAULT_FSYNC_POLICY,
      timestampField: options.timestampField ?? 'timestamp',
      timestampUnit: options.timestampUnit ?? 'ms',
      now: options.now ?? Date.now,
      maxWriteBytes: options.maxWriteBytes ?? DEFAULT_MAX_WRITE_BYTES,
      logger: options.logger,
    };
    if (!FSYNC_POLICIES.includes(resolved.fsync)) {
      throw new RetentionError(ErrorCode.CONFIG_INVALID, `Invalid fsync policy '${String(resolved.fsync)}'. Use one of ${FSYNC_POLICIES.join(', ')}.`);
    }

    const { directory } = logNames(resolved.logPath);
    if (!(await isDirectory(directory))) {
      throw new RetentionError(
        ErrorCode.LOG_DIR_MISSING,
        `Log directory ${directory} of profile '${resolved.profile}' does not exist. Create it, or fix audit.path in the config.`,
      );
    }
    const lock = await LogLock.open(lockPathFor(resolved.logPath), resolved.lockTimeoutMs);
    return new AuditLogWriter(resolved, lock);
  }

  get logPath(): string {
    return this.options.logPath;
  }

  /** Path of the file that the last batch went to, or null before the first batch and after a reopen. */
  get currentPath(): string | null {
    return this.target?.path ?? null;
  }

  /** Number of calls queued and not yet written. */
  get pending(): number {
    return this.queue.length;
  }

  /** Appends records, all or none: an invalid record rejects the call with INVALID_INPUT before anything is written. */
  async append(records: readonly AuditRecordInput[]): Promise<AppendResult> {
    return this.enqueue(this.preparer.prepareRecords(records));
  }

  /** Appends an NDJSON body, one JSON object per line. Errors name the line. */
  async appendNdjson(body: string | Uint8Array): Promise<AppendResult> {
    return this.enqueue(this.preparer.prepareNdjson(typeof body === 'string' ? Buffer.from(body, 'utf8') : body));
  }

  /** Appends one JSON object, which may span several lines. */
  async appendJson(body: string | Uint8Array): Promise<AppendResult> {
    return this.enqueue(this.preparer.prepareJsonDocument(typeof body === 'string' ? Buffer.from(body, 'utf8') : body));
  }

  /**
   * Makes the next batch choose its file again from the directory, as after a
   * restart: for logrotate's postrotate (SIGHUP) or after moving segments by hand.
   */
  reopen(): void {
    this.reopenRequested = true;
  }

  /** Waits until every call made before it is written, and under the `interval` policy also fsynced. */
  async flush(): Promise<void> {
    await this.waitForQueue();
    if (this.options.fsync === 'interval') {
      await this.runSerially(() => this.syncNow());
    }
  }

  /** Writes every queued call, fsyncs under `always` and `interval`, and closes the files. Later calls are rejected. */
  close(): Promise<void> {
    this.closing ??= this.drainAndClose();
    return this.closing;
  }

  private enqueue(prepared: PreparedRecords): Promise<AppendResult> {
    if (this.closing !== null) {
      return Promise.reject(
        new RetentionError(ErrorCode.INTERNAL, `The writer of ${this.options.logPath} is closed; ${prepared.count} records were not appended.`),
      );
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ prepared, resolve, reject });
      this.scheduleFlush();
    });
  }

  private runSerially(job: () => Promise<void>): Promise<void> {
    const run = this.tail.then(job);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) {
      return;
    }
    this.flushScheduled = true;
    void this.runSerially(async () => {
      this.flushScheduled = false;
      const group = this.takeGroup();
      if (this.queue.length > 0) {
        this.scheduleFlush();
      }
      await this.writeGroup(group);
    });
  }

  /** Takes the queued calls that fit in one write of maxWriteBytes, and always at least one. */
  private takeGroup(): QueuedAppend[] {
    const group = [this.queue.shift()!];
    let bytes = group[0]!.prepared.data.length;
    while (this.queue.length > 0 && bytes + this.queue[0]!.prepared.data.length <= this.options.maxWriteBytes) {
      const next = this.queue.shift()!;
      bytes += next.prepared.data.length;
      group.push(next);
    }
    return group;
  }

  private async writeGroup(group: QueuedAppend[]): Promise<void> {
    const data = group.length === 1 ? group[0]!.prepared.data : Buffer.concat(group.map((queued) => queued.prepared.data));
    const records = group.reduce((sum, queued) => sum + queued.prepared.count, 0);
    try {
      const { path, lockWaitMs } = await this.writeBatch(data, records);
      for (const queued of group) {
        queued.resolve({ records: queued.prepared.count, path, lockWaitMs });
      }
    } catch (error) {
      for (const queued of group) {
        queued.reject(error);
      }
    }
  }

  /** Writes one batch under the lock, then makes it durable as the fsync policy requires. */
  private async writeBatch(data: Buffer, records: number): Promise<{ path: string; lockWaitMs: number }> {
    let lockWaitMs = 0;
    const target = await this.lock.hold(this.target?.path ?? this.options.logPath, async (waitedMs) => {
      lockWaitMs = waitedMs;
      let path = this.target?.path ?? this.options.logPath;
      try {
        const chosen = await this.prepareTarget(data.length);
        path = chosen.path;
        await this.appendToTarget(chosen, data, records);
        return chosen;
      } catch (error) {
        throw fromFileSystemError(error, 'append to', path);
      }
    });

    // The fsync runs after the lock is released, so a cleanup waits only for the write. A cleanup that
    // replaces the file meanwhile has copied these bytes and fsynced its copy before its rename.
    try {
      await this.makeDurable(target);
    } catch (error) {
      // NOTE: the records are in the file but may not be on disk; a caller that retries may duplicate them.
      throw fromFileSystemError(error, 'fsync', target.path);
    }
    return { path: target.path, lockWaitMs };
  }

  /**
   * Under the lock: reopens the file when it was replaced or removed, opens the
   * active file on the first batch and after reopen(), and rotates to a new segment
   * when `bytes` more would take a non-empty file beyond maxFileSize.
   */
  private async prepareTarget(bytes: number): Promise<AppendTarget> {
    if (this.reopenRequested) {
      this.reopenRequested = false;
      await this.releaseTarget();
    }

    if (this.target !== null && !(await this.stillAtItsPath(this.target))) {
      const path = this.target.path;
      await this.releaseTarget();
      this.target = await openForAppend(path);
      this.options.logger?.info({ path, created: this.target.created }, 'reopened the log file after another process replaced or removed it');
    }

    if (this.target === null) {
      const active = await activeFilePath(this.options.logPath, this.options.profile);
      this.target = await openForAppend(active ?? this.options.logPath);
      this.options.logger?.info({ path: this.target.path, created: this.target.created }, 'opened the log file for appending');
    }

    const size = (await this.target.handle.stat()).size;
    if (size > 0 && size + bytes > this.options.maxFileSize) {
      await this.rotate(bytes, size);
    }
    return this.target!;
  }

  private async stillAtItsPath(target: AppendTarget): Promise<boolean> {
    const current = await stat(target.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    return current !== null && current.ino === target.ino && current.dev === target.dev;
  }

  /** Moves to a newer segment: one that another writer started and that still has room, else a new one. */
  private async rotate(bytes: number, size: number): Promise<void> {
    const previous = this.target!.path;
    const active = await activeFilePath(this.options.logPath, this.options.profile);
    if (active !== null && active !== previous) {
      const candidate = await openForAppend(active);
      const candidateSize = (await candidate.handle.stat()).size;
      if (candidateSize + bytes <= this.options.maxFileSize) {
        await this.releaseTarget();
        this.target = candidate;
        return;
      }
      await candidate.handle.close();
    }

    await this.releaseTarget();
    this.target = await createNextSegment(this.options.logPath, this.options.now());
    this.options.logger?.info(
      { path: this.target.path, previous, previousBytes: size, maxFileSize: this.options.maxFileSize },
      'started a new log segment',
    );
  }

  /**
   * Appends `data` with one write(2). On failure, cuts the file back to its size
   * before the write, so no partial batch stays. The lock keeps other writers out meanwhile.
   */
  private async appendToTarget(target: AppendTarget, data: Buffer, records: number): Promise<void> {
    const sizeBefore = (await target.handle.stat()).size;
    let payload = data;
    if (sizeBefore > 0) {
      const last = Buffer.alloc(1);
      await target.handle.read(last, 0, 1, sizeBefore - 1);
      if (last[0] !== LINE_FEED[0]) {
        payload = Buffer.concat([LINE_FEED, data]);
        this.options.logger?.warn({ path: target.path }, 'ended a partial last line, left by a writer that crashed or writes without the lock, before appending');
      }
    }

    try {
      let written = (await target.handle.write(payload)).bytesWritten;
      // A short write happens when the disk fills part way, and writing on surfaces the real error (ENOSPC).
      while (written < payload.length) {
        const { bytesWritten } = await target.handle.write(payload, written, payload.length - written);
        if (bytesWritten === 0) {
          throw Object.assign(new Error(`write of ${payload.length - written} bytes wrote nothing`), { code: 'ENOSPC' });
        }
        written += bytesWritten;
      }
    } catch (error) {
      await target.handle.truncate(sizeBefore).catch((truncateError: unknown) => {
        this.options.logger?.error({ path: target.path, err: truncateError }, 'could not remove a partly written batch; the file may end with a partial line');
      });
      const errno = (error as NodeJS.ErrnoException).code;
      if (errno === 'ENOSPC' || errno === 'EDQUOT') {
        throw new RetentionError(
          ErrorCode.DISK_FULL,
          `Disk full: could not append ${records} records to ${target.path}. Free space on its file system and retry; no part of the batch was kept.`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  private async makeDurable(target: AppendTarget): Promise<void> {
    if (this.options.fsync === 'always') {
      await target.handle.datasync();
      if (target.created) {
        await fsyncDirectory(dirname(target.path));
        target.created = false;
      }
    } else if (this.options.fsync === 'interval') {
      this.unsynced = true;
      this.armSyncTimer();
    }
  }

  private armSyncTimer(): void {
    if (this.syncTimer !== null) {
      return;
    }
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.runSerially(() => this.syncNow());
    }, FSYNC_INTERVAL_MS);
    this.syncTimer.unref();
  }

  /** Fsyncs what the `interval` policy left unsynced. Logs a failure, because no caller waits for it. */
  private async syncNow(): Promise<void> {
    const target = this.target;
    if (!this.unsynced || target === null) {
      return;
    }
    this.unsynced = false;
    try {
      await target.handle.datasync();
      if (target.created) {
        await fsyncDirectory(dirname(target.path));
        target.created = false;
      }
    } catch (error) {
      this.options.logger?.error({ path: target.path, err: error }, 'periodic fsync of the log file failed');
    }
  }

  /** Closes the current file, fsyncing it first when the `interval` policy left writes unsynced. */
  private async releaseTarget(): Promise<void> {
    await this.syncNow();
    const target = this.target;
    this.target = null;
    await target?.handle.close().catch(() => undefined);
  }

  private async waitForQueue(): Promise<void> {
    while (this.queue.length > 0 || this.flushScheduled) {
      await this.tail;
    }
    await this.tail;
  }

  private async drainAndClose(): Promise<void> {
    await this.waitForQueue();
    await this.runSerially(async () => {
      if (this.syncTimer !== null) {
        clearTimeout(this.syncTimer);
        this.syncTimer = null;
      }
      await this.releaseTarget();
      await this.lock.close();
    });
  }
}
