/**
 * A cleanup run over one profile's log: find its files, resolve retention, and
 * clean every file in turn. The dry run walks the same code with writes disabled,
 * so both report the same deletions for the same files and clock.
 */

import { randomUUID } from 'node:crypto';
import { realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';

import type { ProfileSettings } from '../config/load.js';
import { ArchiveSink, archiveName, newRunId, publishLeftoverStaging, type CleanupArchiveFormat } from './archive-sink.js';
import { fsyncDirectory, removeLeftoverTemporaries } from './durable.js';
import { ErrorCode, fromFileSystemError, type RetentionError } from './errors.js';
import { DEFAULT_CHUNK_BYTES, READ_BUFFER_COUNT, applyCachedTally, cleanupFile, type DeletedLinesSink, type FileCleanupOptions, type FileResult, type IndexedFile } from './file-cleanup.js';
import { DeletedLinesDigest, ThreadedDigest, type RunDigest } from './digest.js';
import { appendCleanupRecord, type CleanupHistoryRecord } from './history.js';
import { acquireScanBuffers, type ScanBuffers } from './line-walk.js';
import { cleanupHistoryPathFor, discoverLayout, type LogFile, type SkippedFile } from './layout.js';
import { cleanupResponse } from './report.js';
import type { FileTally } from './line-processor.js';
import { ScanIndex, fileState, freshness, sameState, summaryAfterRewrite, summaryFromScan, tallyFromSummary, type FileState } from './scan-index.js';
import { acquireRunLock, LogLock } from './lock.js';
import type { Logger } from './logger.js';
import { OpenWriters } from './open-writers.js';
import { compareKeys, RetentionRules, type RetentionInputs, type SchemaRule } from './retention.js';
import { MIN_HELPER_TOTAL_BYTES, ScanHelper, helperUseful } from './scan-helper.js';
import { LineScanner, type ScannerOptions } from './scanner.js';
import { readSchemasFile } from './schemas-file.js';
import { allocateStagingBuffers } from './staged-output.js';

export type CleanupStatus = 'success' | 'dry_run' | 'skipped' | 'error';

export interface CleanupRequest {
  profile: ProfileSettings;
  dryRun: boolean;
  /** The run's clock in epoch ms; every cutoff derives from it. */
  nowMs: number;
  /** Overrides the profile's lock timeout, in ms. */
  lockTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  /** Read size, in bytes; for tests and benchmarks only. */
  chunkBytes?: number | undefined;
  /** Longest scanned line, in bytes; for tests only. */
  maxLineBytes?: number | undefined;
  /** Smallest original written directly, in bytes; for tests only. */
  directWriteMinBytes?: number | undefined;
  /** Forces the second scan thread on or off; by default it runs for large logs on machines with two cores or more. */
  scanHelper?: boolean | undefined;
  /**
   * Waits until the second scan thread has started before the first scan, so that
   * every large chunk is split between the threads. By default the calling thread
   * scans alone until then.
   */
  awaitScanHelper?: boolean | undefined;
  /**
   * The log's scan index. By default the run loads the saved one and saves it back;
   * null turns the index off, so every file is read.
   */
  index?: ScanIndex | null | undefined;
  /** Who asked, for the cleanup history: the client address for HTTP, `cli` for the command line. */
  requestedBy?: string | undefined;
  /** Archive the deleted records before deleting them, in this format, under `archiveDirectory`. */
  archive?: { format: CleanupArchiveFormat; directory: string } | undefined;
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
  /** The archive this run wrote, when it archived deleted records. */
  archive: { path: string; format: string; records: number; bytes: number } | null;
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
    archive: null,
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
  // Dry runs count facets too, so the index they leave behind also serves stats.
  const countFacets = dryRun;
  const scannerOptions: ScannerOptions = {
    timestampField: profile.timestampField,
    timestampUnit: profile.timestampUnit,
    extractLabels: countFacets,
  };
  const scanner = new LineScanner(scannerOptions);
  const scanSettings = { timestampField: profile.timestampField, timestampUnit: profile.timestampUnit };
  const index = request.index === undefined ? await ScanIndex.load(profile.logPath, scanSettings) : request.index;

  const runId = newRunId();
  let digest: RunDigest | null = null;
  let archiveSink: ArchiveSink | null = null;
  let archiveFailure: RetentionError | null = null;
  let deletedSha256 = '';
  let helper: ScanHelper | null = null;
  // Set by the readBuffers getter below, which control-flow analysis does not follow.
  let scanBuffers = null as ScanBuffers | null;
  const pendingCloses: Promise<void>[] = [];
  let releaseRunLock: (() => Promise<void>) | null = null;
  let lock: LogLock | null = null;
  try {
    if (!dryRun) {
      releaseRunLock = await acquireRunLock(layout.directory);
      outcome.leftoversRemoved = await removeLeftoverTemporaries(layout.directory).catch((error: unknown) => {
        throw fromFileSystemError(error, 'remove leftover temporary files in', layout.directory);
      });
      if (outcome.leftoversRemoved.length > 0) {
        logger?.warn({ profile: profile.name, files: outcome.leftoversRemoved }, 'removed temporary files of an interrupted run');
      }
      lock = await LogLock.open(layout.lockPath, request.lockTimeoutMs ?? profile.lockTimeoutMs);
      if (request.archive !== undefined) {
        await publishLeftoverStaging(request.archive.directory, logger).catch((error: unknown) => {
          throw fromFileSystemError(error, 'publish leftover archive staging files in', request.archive!.directory);
        });
        archiveSink = await ArchiveSink.create(request.archive.directory, runId).catch((error: unknown) => {
          throw fromFileSystemError(error, 'create the archive staging file in', request.archive!.directory);
        });
      }
    }
    // /proc shows resolved paths, so the probe compares with the directory's real path.
    const realDirectory = await realpath(layout.directory);
    const writerProbe = { directory: realDirectory, lockPath: join(realDirectory, basename(layout.lockPath)) };
    const openWriters = OpenWriters.scan(writerProbe.directory, writerProbe.lockPath);

    // Decide what the index can decide, so that the helper thread starts only for real scanning work.
    const plans = await Promise.all(layout.files.map((file) => planFile(file, index, rules, dryRun)));
    // A file with an index entry is decided only up to its last expired record, usually a small part of it, so
    // it does not count. Not starting the thread for such runs saves its memory (about 12 MiB) and start-up.
    const bytesToScan = plans.reduce((sum, plan) => sum + (plan.cached === null && plan.expected === null && !plan.file.gzip ? plan.file.size : 0), 0);
    const useThreads = request.scanHelper ?? (helperUseful() && bytesToScan >= MIN_HELPER_TOTAL_BYTES);
    if (useThreads) {
      helper = ScanHelper.start({ scanner: scannerOptions, retention: retentionInputs, nowMs, countFacets });
      if (request.awaitScanHelper === true) {
        await helper.started();
      }
    }
    if (!dryRun) {
      // On large logs the helper thread also computes the SHA-256 of the deleted lines.
      digest = helper !== null ? new ThreadedDigest(helper.digestChannel()) : new DeletedLinesDigest();
    }
    const chunkBytes = request.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const stagingBuffers = dryRun ? null : allocateStagingBuffers();
    const options: FileCleanupOptions = {
      dryRun,
      scanner,
      rules,
      lock,
      chunkBytes,
      maxLineBytes: request.maxLineBytes,
      // Scan memory: the compiled line walk and the helper thread read the chunks in place.
      // It is taken when the first file is read, so a run that the index decides alone takes none.
      get readBuffers() {
        scanBuffers ??= acquireScanBuffers(READ_BUFFER_COUNT, chunkBytes);
        return scanBuffers.buffers;
      },
      stagingBuffers,
      directWriteMinBytes: request.directWriteMinBytes,
      helper,
      openWriters,
      writerProbe,
      countFacets,
      deletedLines: digest === null ? null : bothSinks(digest, archiveSink),
      pendingCloses,
    };

    for (const [position, plan] of plans.entries()) {
      digest?.beginFile();
      archiveSink?.beginFile();
      const result = await runPlan(plan, options, index);
      const committed = result.action === 'rewritten' || result.action === 'removed';
      digest?.endFile(committed);
      await archiveSink?.endFile(committed, committed ? result.tally.expired : 0);
      outcome.files.push(result);

      if (result.skipReason !== null) {
        logger?.warn({ profile: profile.name, file: plan.file.name, reason: result.skipReason }, 'log file skipped');
      }
      if (result.error !== null) {
        // The catalogued message names the path and the remedy; a stack trace would only repeat this module.
        logger?.error({ profile: profile.name, file: plan.file.name, code: result.error.code, reason: result.error.message }, 'log file cleanup failed');
        if (result.error.code === ErrorCode.LOG_LOCKED) {
          // Leave every file not yet finished untouched, so the caller can retry the whole run.
          outcome.notProcessed = layout.files.slice(position + 1).map((remaining) => remaining.name);
          break;
        }
      }
    }

    if (index !== null) {
      index.retainOnly(new Set(layout.files.map((file) => file.name)));
      await index.save();
    }
    if (archiveSink !== null) {
      try {
        outcome.archive = await publishArchive(archiveSink, request.archive!, profile, nowMs, runId, logger);
      } catch (error) {
        archiveFailure = fromFileSystemError(error, 'write the archive in', request.archive!.directory);
        logger?.error({ profile: profile.name, err: archiveFailure }, 'archive not written');
      }
    }
    if (digest !== null) {
      deletedSha256 = await digest.digest();
    }
  } finally {
    await Promise.all(pendingCloses);
    await digest?.close();
    await archiveSink?.close();
    await helper?.close();
    // After the helper thread has stopped, nothing reads the buffers any more.
    scanBuffers?.release();
    await lock?.close();
    await releaseRunLock?.();
  }

  summarize(outcome, rules);
  if (archiveFailure !== null) {
    outcome.status = 'error';
    outcome.error ??= archiveFailure;
  }
  outcome.durationMs = Math.round(performance.now() - startedAt);
  if (!dryRun && profile.enabled) {
    await recordInHistory(outcome, deletedSha256, request.requestedBy ?? 'library', logger);
  }
  return outcome;
}

/** Feeds deleted lines to the digest and, when archiving, to the archive's staging file. */
function bothSinks(digest: RunDigest, archive: ArchiveSink | null): DeletedLinesSink {
  if (archive === null) {
    return digest;
  }
  return {
    add(bytes) {
      digest.add(bytes);
      archive.add(bytes);
    },
    flush: () => archive.flush(),
    drain: async () => {
      await digest.drain?.();
    },
  };
}

/**
 * Turns the staging file into the run's archive: renamed as it is for `jsonl`, or
 * converted by DuckDB for `parquet` and `duckdb`. A run that deleted nothing leaves
 * no archive. If the conversion fails, the staging file is published as `.jsonl`,
 * because the records in it are no longer in the log.
 */
async function publishArchive(
  sink: ArchiveSink,
  archive: { format: CleanupArchiveFormat; directory: string },
  profile: ProfileSettings,
  nowMs: number,
  runId: string,
  logger: Logger | undefined,
): Promise<CleanupOutcome['archive']> {
  await sink.flush();
  if (sink.records === 0) {
    await unlink(sink.stagingPath).catch(() => undefined);
    return null;
  }

  const name = archiveName(profile.name, nowMs, runId, archive.format);
  const path = join(archive.directory, name);
  if (archive.format === 'jsonl') {
    await rename(sink.stagingPath, path);
  } else {
    try {
      const { writeArchive } = await import('./export/archive.js');
      await writeArchive(sink.stagingPath, archive.format, path, {
        timestampField: profile.timestampField,
        timestampUnit: profile.timestampUnit,
        expectedRecords: sink.records,
        logger,
      });
      await unlink(sink.stagingPath);
    } catch (error) {
      const fallback = join(archive.directory, archiveName(profile.name, nowMs, runId, 'jsonl'));
      await rename(sink.stagingPath, fallback);
      await fsyncDirectory(archive.directory);
      throw fromFileSystemError(error, `convert the archive to ${archive.format}; the deleted records are in ${fallback}. Could not write`, path);
    }
  }
  await fsyncDirectory(archive.directory);
  const { size } = await stat(path);
  return { path, format: archive.format, records: sink.records, bytes: size };
}

/**
 * Appends the run to the cleanup history. A history that cannot be written turns the
 * run into an error, because deletions without their audit record must not pass
 * silently; the deletions themselves stand.
 */
async function recordInHistory(outcome: CleanupOutcome, deletedSha256: string, requestedBy: string, logger: Logger | undefined): Promise<void> {
  const response = cleanupResponse(outcome);
  const details = response.details!;
  const record: CleanupHistoryRecord = {
    at: new Date(outcome.nowMs).toISOString(),
    run_id: randomUUID(),
    profile: outcome.profile,
    requested_by: requestedBy,
    status: outcome.status === 'error' ? 'error' : 'success',
    message: response.message,
    cutoffs: Object.fromEntries(
      Object.entries(details.cutoffs).map(([key, cutoff]) => [key, { retention_days: cutoff.retention_days, cutoff: cutoff.cutoff }]),
    ),
    deleted_per_schema: Object.fromEntries(outcome.deletedPerSchema),
    deleted: outcome.totalDeleted,
    files_rewritten: details.files_rewritten,
    files_removed: details.files_removed,
    bytes_freed: details.bytes_freed,
    archive: outcome.archive === null ? null : { path: outcome.archive.path, records: outcome.archive.records },
    deleted_sha256: deletedSha256,
    duration_ms: outcome.durationMs,
  };
  try {
    await appendCleanupRecord(outcome.logPath, record);
  } catch (error) {
    const failure = fromFileSystemError(error, 'append to the cleanup history', cleanupHistoryPathFor(outcome.logPath));
    logger?.error({ profile: outcome.profile, err: failure }, 'cleanup history not written');
    outcome.status = 'error';
    outcome.error ??= failure;
  }
}

/** One file's state before the run, and what its index entry decides about it. */
interface FilePlan {
  file: LogFile;
  state: FileState | null;
  /** Tally from the index at this run's cutoffs; null when the file must be read. */
  cached: FileTally | null;
  /** Indexed state and tally of a file that the real run must rewrite, so that its scan can stop after the last expired record. */
  expected: IndexedFile | null;
}

/**
 * Looks the file up in the index. A fresh entry from a complete scan decides a file
 * with nothing expired, a file whose content is all expired records, and, for a dry
 * run, any file whose expired count the entry can compute. Everything else is read;
 * a plain file that the real run rewrites is read with the entry's tally as `expected`.
 */
async function planFile(file: LogFile, index: ScanIndex | null, rules: RetentionRules, dryRun: boolean): Promise<FilePlan> {
  const state = await fileState(file.path);
  const summary = index?.get(file.name);
  if (state === null || summary === undefined || !summary.fullScan || (await freshness(summary, file.path, state)) !== 'fresh') {
    return { file, state, cached: null, expected: null };
  }

  const tally = tallyFromSummary(summary, rules);
  if (tally === null) {
    return { file, state, cached: null, expected: null };
  }
  if (dryRun || tally.expired === 0 || tally.keptBytes === 0) {
    return { file, state, cached: tally, expected: null };
  }
  // A last line without a line feed may be completed by a writer while the scan runs, so such a file is read whole.
  const expectedTally = file.gzip || summary.partialTailBytes > 0 ? null : tallyFromSummary(summary, rules, true);
  return { file, state, cached: null, expected: expectedTally === null ? null : { state, tally: expectedTally } };
}

/** Carries out one plan: from the index where it can, else by reading the file; then updates the index. */
async function runPlan(plan: FilePlan, options: FileCleanupOptions, index: ScanIndex | null): Promise<FileResult> {
  const { file, state, cached, expected } = plan;
  if (cached !== null && state !== null) {
    const decided = await applyCachedTally(file, state, cached, options);
    if (decided !== null) {
      return decided;
    }
  }

  const result = await cleanupFile(file, options, expected);
  if (index === null) {
    return result;
  }

  // Only a complete scan of a file that did not change meanwhile may enter the index.
  const after = await fileState(file.path);
  const unchangedDuringScan = state !== null && after !== null && sameState(state, after);
  if (result.action === 'unchanged' || (options.dryRun && result.error === null && result.skipReason === null)) {
    if (unchangedDuringScan) {
      index.set(await summaryFromScan(file.name, file.path, after, result.tally));
    } else {
      index.delete(file.name);
    }
  } else if (result.action === 'rewritten' && result.replacement != null) {
    // The new file enters the index unless a writer has appended to it since the rename.
    const now = await fileState(file.path);
    const unchangedSinceRename = now !== null && sameState(now, result.replacement);
    const summary = unchangedSinceRename ? await summaryAfterRewrite(file.name, file.path, file.gzip, now, result.tally) : null;
    if (summary === null) {
      index.delete(file.name);
    } else {
      index.set(summary);
    }
  } else if (result.action === 'rewritten' || result.action === 'removed') {
    index.delete(file.name);
  }
  return result;
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
