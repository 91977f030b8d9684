/**
 * A cleanup run over one profile's log: find its files, resolve retention, and
 * clean every file in turn. The dry run walks the same code with writes disabled,
 * so both report the same deletions for the same files and clock.
 */

import { stat } from 'node:fs/promises';

import type { ProfileSettings } from '../config/load.js';
import { removeLeftoverTemporaries } from './durable.js';
import { ErrorCode, fromFileSystemError, type RetentionError } from './errors.js';
import { DEFAULT_CHUNK_BYTES, cleanupFile, type FileResult } from './file-cleanup.js';
import { discoverLayout, type SkippedFile } from './layout.js';
import { acquireRunLock, LogLock } from './lock.js';
import type { Logger } from './logger.js';
import { OpenWriters } from './open-writers.js';
import { compareKeys, RetentionRules, type RetentionInputs, type SchemaRule } from './retention.js';
import { MIN_HELPER_TOTAL_BYTES, ScanHelper, helperUseful } from './scan-helper.js';
import { LineScanner, type ScannerOptions } from './scanner.js';
import { readSchemasFile } from './schemas-file.js';

export type CleanupStatus = 'success' | 'dry_run' | 'skipped' | 'error';

export interface CleanupRequest {
  profile: ProfileSettings;
  dryRun: boolean;
  /** The run's clock in epoch ms; every cutoff derives from it. */
  nowMs: number;
  /** Overrides the profile's lock timeout, in ms. */
  lockTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  /** Read size and longest scanned line, in bytes; for tests and benchmarks only. */
  chunkBytes?: number | undefined;
  maxLineBytes?: number | undefined;
  /** Forces the second scan thread on or off; by default it runs for large logs on machines with two cores or more. */
  scanHelper?: boolean | undefined;
}

export interface CleanupOutcome {
  profile: string;
  dryRun: boolean;
  status: CleanupStatus;
  nowMs: number;
  logPath: string;
  /** Files the run processed, oldest first, including failed ones. */
  files: FileResult[];
  /** Files left untouched because the run stopped early (lock timeout). */
  notProcessed: string[];
  /** Files the layout matched but that are never processed, with the reason. */
  skipped: SkippedFile[];
  /** Rules of every schema key seen, sorted by key. */
  rules: SchemaRule[];
  /** Deleted (or, for a dry run, expired) records by schema key, sorted by key. */
  deletedPerSchema: Map<string, number>;
  totalDeleted: number;
  /** The failure that decides the answer's status code, when any file failed. */
  error: RetentionError | null;
  leftoversRemoved: string[];
  schemasFileIgnoredLines: number;
  durationMs: number;
}

/**
 * Runs one cleanup. Throws a RetentionError before touching anything when the run
 * cannot start (missing directory, invalid schemas file, another cleanup running);
 * failures of single files come back in the outcome with `status: 'error'`.
 */
export async function runCleanup(request: CleanupRequest): Promise<CleanupOutcome> {
  const startedAt = performance.now();
  const { profile, dryRun, nowMs } = request;
  const logger = request.logger;

  const outcome: CleanupOutcome = {
    profile: profile.name,
    dryRun,
    status: dryRun ? 'dry_run' : 'success',
    nowMs,
    logPath: profile.logPath,
    files: [],
    notProcessed: [],
    skipped: [],
    rules: [],
    deletedPerSchema: new Map(),
    totalDeleted: 0,
    error: null,
    leftoversRemoved: [],
    schemasFileIgnoredLines: 0,
    durationMs: 0,
  };

  if (!profile.enabled) {
    outcome.status = 'skipped';
    return outcome;
  }

  const layout = await discoverLayout(profile.logPath, profile.name);
  const schemasFile = await readSchemasFile(layout.schemasPath);
  outcome.schemasFileIgnoredLines = schemasFile.ignoredLines;
  outcome.skipped = layout.skipped;
  for (const skipped of layout.skipped) {
    logger?.warn({ profile: profile.name, file: skipped.name, reason: skipped.reason }, 'log file skipped');
  }

  const retentionInputs: RetentionInputs = {
    configRetention: profile.retention,
    schemasFileRetention: schemasFile.retention,
    profileRetentionDays: profile.retentionDays,
  };
  const rules = new RetentionRules(retentionInputs, nowMs);
  const scannerOptions: ScannerOptions = {
    timestampField: profile.timestampField,
    timestampUnit: profile.timestampUnit,
    extractLabels: false,
  };
  const scanner = new LineScanner(scannerOptions);

  const chunkBytes = request.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const plainBytes = layout.files.reduce((sum, file) => sum + (file.gzip ? 0 : file.size), 0);
  const helper =
    (request.scanHelper ?? (helperUseful() && plainBytes >= MIN_HELPER_TOTAL_BYTES))
      ? ScanHelper.start({ scanner: scannerOptions, retention: retentionInputs, nowMs, countFacets: false })
      : null;
  // The helper thread reads the chunks in place, so they live in shared memory when it runs.
  const allocate = (size: number): Buffer => (helper === null ? Buffer.allocUnsafe(size) : Buffer.from(new SharedArrayBuffer(size)));
  const readBuffers: [Buffer, Buffer] = [allocate(chunkBytes), allocate(chunkBytes)];

  let releaseRunLock: (() => Promise<void>) | null = null;
  let lock: LogLock | null = null;
  try {
    if (!dryRun) {
      releaseRunLock = await acquireRunLock(layout.directory);
      outcome.leftoversRemoved = await removeLeftoverTemporaries(layout.directory).catch((error: unknown) => {
        throw fromFileSystemError(error, 'remove leftover temporary files in', layout.directory);
      });
      if (outcome.leftoversRemoved.length > 0) {
        logger?.warn({ profile: profile.name, files: outcome.leftoversRemoved }, 'removed temporary files of an interrupted cleanup');
      }
      lock = await LogLock.open(layout.lockPath, request.lockTimeoutMs ?? profile.lockTimeoutMs);
    }
    const lockInfo = await stat(layout.lockPath).catch(() => null);
    const lockFileIdentity = lockInfo === null ? null : { dev: lockInfo.dev, ino: lockInfo.ino };
    const openWriters = await OpenWriters.scan(lockFileIdentity);

    for (const [index, file] of layout.files.entries()) {
      const result = await cleanupFile(file, {
        dryRun,
        scanner,
        rules,
        lock,
        chunkBytes,
        maxLineBytes: request.maxLineBytes,
        readBuffers,
        helper,
        openWriters,
        lockFileIdentity,
      });
      outcome.files.push(result);

      if (result.skipReason !== null) {
        logger?.warn({ profile: profile.name, file: file.name, reason: result.skipReason }, 'log file skipped');
      }
      if (result.error !== null) {
        logger?.error({ profile: profile.name, file: file.name, code: result.error.code, err: result.error }, 'log file cleanup failed');
        if (result.error.code === ErrorCode.LOG_LOCKED) {
          // Leave every file not yet finished untouched, so the caller can retry the whole run.
          outcome.notProcessed = layout.files.slice(index + 1).map((remaining) => remaining.name);
          break;
        }
      }
    }
  } finally {
    await helper?.close();
    await lock?.close();
    await releaseRunLock?.();
  }

  summarize(outcome, rules);
  outcome.durationMs = Math.round(performance.now() - startedAt);
  return outcome;
}

/** Fills the totals and the deciding error from the per-file results. */
function summarize(outcome: CleanupOutcome, rules: RetentionRules): void {
  const deleted = new Map<string, number>();
  for (const result of outcome.files) {
    if (result.action === 'failed') {
      continue;
    }
    for (const [key, count] of result.tally.deletedPerSchema()) {
      deleted.set(key, (deleted.get(key) ?? 0) + count);
    }
  }
  outcome.deletedPerSchema = new Map([...deleted].sort(([left], [right]) => compareKeys(left, right)));
  outcome.totalDeleted = [...deleted.values()].reduce((sum, count) => sum + count, 0);
  outcome.rules = rules.resolvedRules();

  const errors = outcome.files.flatMap((result) => (result.error === null ? [] : [result.error]));
  if (errors.length > 0) {
    outcome.status = 'error';
    outcome.error =
      errors.find((error) => error.code === ErrorCode.LOG_LOCKED) ??
      errors.find((error) => error.code === ErrorCode.DISK_FULL) ??
      errors[0]!;
  }
}
