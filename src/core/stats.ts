/**
 * Stats of one profile's log for monitoring, from the scan index that cleanups share:
 * an unchanged file costs a stat call, an appended one a read of its new bytes, and
 * only a replaced, truncated or rewritten file is read again in full. The expired
 * counts follow the cleanup's own rule and clock, so stats and a dry run agree.
 */

import type { ProfileSettings } from '../config/load.js';
import type { LastCleanup, StatsResponse } from '../schemas/stats.js';
import { fromFileSystemError, isRetentionError, type RetentionError } from './errors.js';
import { cleanupFile, DEFAULT_CHUNK_BYTES } from './file-cleanup.js';
import { readLastCleanup, type CleanupHistoryRecord } from './history.js';
import { discoverLayout, type LogFile } from './layout.js';
import { acquireScanBuffers, type ScanBuffers } from './line-walk.js';
import type { Logger } from './logger.js';
import { FileTally } from './line-processor.js';
import { OpenWriters } from './open-writers.js';
import { scanRegion } from './region-scan.js';
import { compareKeys, RetentionRules, type RetentionInputs } from './retention.js';
import { LineScanner } from './scanner.js';
import {
  edgeHashes,
  expiredAt,
  fileState,
  freshness,
  sameState,
  summaryFromScan,
  tallyFromSummary,
  type FileState,
  type FileSummary,
  type ScanIndex,
  type SchemaSummary,
} from './scan-index.js';
import { readSchemasFile } from './schemas-file.js';
import { formatInstant } from './timestamp.js';

export type StatsReport = StatsResponse;

export interface StatsRequest {
  profile: ProfileSettings;
  nowMs: number;
  index: ScanIndex;
  logger?: Logger | undefined;
}

function addCounts(target: Map<string, number>, counts: Record<string, number>): void {
  for (const [key, count] of Object.entries(counts)) {
    target.set(key, (target.get(key) ?? 0) + count);
  }
}

function sortedObject(counts: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...counts].sort(([left], [right]) => compareKeys(left, right)));
}

/** Context shared by the scans of one stats call. */
interface ScanContext {
  rules: RetentionRules;
  retention: RetentionInputs;
  scanner: LineScanner;
  /** Read buffers shared by the scans of one call, allocated on first use. */
  scanBuffers: ScanBuffers | null;
}

/** Reads a whole file and returns its entry, counting facets. */
async function scanWholeFile(file: LogFile, state: FileState, context: ScanContext): Promise<FileSummary | null> {
  context.scanBuffers ??= acquireScanBuffers(2, DEFAULT_CHUNK_BYTES);
  const result = await cleanupFile(file, {
    dryRun: true,
    scanner: context.scanner,
    rules: context.rules,
    lock: null,
    chunkBytes: DEFAULT_CHUNK_BYTES,
    readBuffers: context.scanBuffers.buffers,
    openWriters: OpenWriters.none(),
    writerProbe: { directory: '', lockPath: '' },
    countFacets: true,
  });
  if (result.error !== null) {
    throw result.error;
  }
  const after = await fileState(file.path);
  if (after === null || !sameState(after, state)) {
    // The file changed while it was read, perhaps in bytes already read: do not keep this scan.
    return null;
  }
  return summaryFromScan(file.name, file.path, after, result.tally);
}

/**
 * Moves a schema's remembered cutoff forward to `cutoffMs`, so that counts of newly
 * appended records, made at that cutoff, can be added to it. Returns null when the
 * entry does not contain the count of records before the new cutoff.
 */
function rebase(schema: SchemaSummary, cutoffMs: number): SchemaSummary | null {
  // The entry lists records one by one only after its own cutoff, so an earlier cutoff needs a scan.
  if (cutoffMs < schema.cutoffMs) {
    return null;
  }
  const expired = expiredAt(schema, cutoffMs);
  if (expired === null) {
    return null;
  }
  const window = schema.window.filter(([instantMs]) => instantMs >= cutoffMs && instantMs < schema.windowEndMs);
  return { ...schema, cutoffMs, expiredAtCutoff: expired.records, expiredBytesAtCutoff: expired.bytes, window };
}

/** Extends an entry with the records appended since its scan. Returns null when a full scan is needed. */
async function extendWithAppended(summary: FileSummary, file: LogFile, state: FileState, context: ScanContext): Promise<FileSummary | null> {
  // An overlong line may still be unfinished at the old end, where no line starts, so such a file is read again.
  if (summary.facets === null || file.gzip || (summary.malformedByKind['too_long'] ?? 0) > 0) {
    return null;
  }

  // The old last line without a line feed may be complete now, so it is read again.
  const start = summary.size - summary.partialTailBytes;
  const appended = await scanRegion(file.path, start, context.scanner, context.rules);
  const after = await fileState(file.path);
  if (after === null || !sameState(after, state)) {
    return null;
  }

  const schemas = new Map<string, SchemaSummary>();
  for (const schema of summary.schemas) {
    const rule = context.rules.ruleFor(schema.schemaName, schema.schemaVersion);
    const rebased = rebase(schema, rule.cutoffMs);
    if (rebased === null) {
      return null;
    }
    schemas.set(rule.key, rebased);
  }
  for (const [key, tally] of appended.schemas) {
    const existing = schemas.get(key);
    const added: SchemaSummary = {
      schemaName: tally.rule.schemaName,
      schemaVersion: tally.schemaVersion,
      records: tally.records,
      bytes: tally.bytes,
      earliestMs: tally.earliestMs,
      latestMs: tally.latestMs,
      cutoffMs: tally.rule.cutoffMs,
      expiredAtCutoff: tally.expired,
      expiredBytesAtCutoff: tally.expiredBytes,
      window: tally.window.map((instant, index): [number, number] => [instant, tally.windowBytes[index]!]),
      windowEndMs: tally.windowEndMs,
    };
    if (existing === undefined) {
      added.window.sort((left, right) => left[0] - right[0]);
      schemas.set(key, added);
      continue;
    }
    const windowEndMs = Math.min(existing.windowEndMs, added.windowEndMs);
    schemas.set(key, {
      ...existing,
      records: existing.records + added.records,
      bytes: existing.bytes + added.bytes,
      earliestMs: Math.min(existing.earliestMs, added.earliestMs),
      latestMs: Math.max(existing.latestMs, added.latestMs),
      expiredAtCutoff: existing.expiredAtCutoff + added.expiredAtCutoff,
      expiredBytesAtCutoff: existing.expiredBytesAtCutoff + added.expiredBytesAtCutoff,
      window: [...existing.window, ...added.window].filter(([instantMs]) => instantMs < windowEndMs).sort((left, right) => left[0] - right[0]),
      windowEndMs,
    });
  }

  const facets = {
    byType: { ...summary.facets.byType },
    byStatus: { ...summary.facets.byStatus },
    byPolicy: { ...summary.facets.byPolicy },
  };
  for (const [key, count] of appended.facets!.byType) facets.byType[key] = (facets.byType[key] ?? 0) + count;
  for (const [key, count] of appended.facets!.byStatus) facets.byStatus[key] = (facets.byStatus[key] ?? 0) + count;
  for (const [key, count] of appended.facets!.byPolicy) facets.byPolicy[key] = (facets.byPolicy[key] ?? 0) + count;

  const malformedByKind = { ...summary.malformedByKind };
  for (const [kind, count] of Object.entries(appended.malformedByKind)) {
    malformedByKind[kind] = (malformedByKind[kind] ?? 0) + count;
  }
  const scannedBytes = start + appended.keptBytes + appended.expiredBytes;
  return {
    ...summary,
    ...after,
    size: scannedBytes,
    ...(await edgeHashes(file.path, scannedBytes)),
    contentBytes: summary.contentBytes - summary.partialTailBytes + appended.keptBytes + appended.expiredBytes,
    records: summary.records + appended.records,
    malformed: summary.malformed + appended.malformed,
    malformedByKind,
    blankLines: summary.blankLines + appended.blankLines,
    partialTailBytes: appended.partialTailBytes,
    schemas: [...schemas.values()],
    facets,
    fullScan: false,
  };
}

/** Returns the entry of `file` that describes it now, reading as little as possible, and whether it read. */
async function currentSummary(file: LogFile, index: ScanIndex, context: ScanContext): Promise<{ summary: FileSummary | null; scanned: boolean; state: FileState }> {
  const state = await fileState(file.path);
  if (state === null) {
    return { summary: null, scanned: false, state: { dev: 0, ino: 0, size: 0, mtimeNs: '0', ctimeNs: '0' } };
  }
  const existing = index.get(file.name);
  const status = existing === undefined ? 'stale' : await freshness(existing, file.path, state);

  if (existing !== undefined && status === 'fresh' && existing.facets !== null && tallyFromSummary(existing, context.rules) !== null) {
    return { summary: existing, scanned: false, state };
  }
  if (existing !== undefined && status === 'appended') {
    const extended = await extendWithAppended(existing, file, state, context);
    // An extension is kept only when it covers the whole file as it is now, and can
    // give the expired counts at the current cutoffs (appended old records may not).
    if (extended !== null && extended.size === state.size && tallyFromSummary(extended, context.rules) !== null) {
      index.set(extended);
      return { summary: extended, scanned: true, state };
    }
  }

  const scanned = await scanWholeFile(file, state, context);
  if (scanned !== null) {
    index.set(scanned);
  } else {
    index.delete(file.name);
  }
  return { summary: scanned, scanned: true, state };
}

/** Returns the RetentionError of a file that could not be read; rethrows anything else, which is a defect. */
function unreadableFileError(error: unknown, path: string): RetentionError {
  if (isRetentionError(error)) {
    return error;
  }
  if (typeof (error as NodeJS.ErrnoException | undefined)?.code === 'string') {
    return fromFileSystemError(error, 'read', path);
  }
  throw error;
}

/** Collects the stats of one profile. Throws LOG_DIR_MISSING like a cleanup for an enabled profile. */
export async function collectStats(request: StatsRequest): Promise<StatsReport> {
  const startedAt = performance.now();
  const { profile, nowMs, index } = request;

  const report: StatsReport = {
    profile: profile.name,
    enabled: profile.enabled,
    now: new Date(nowMs).toISOString(),
    total_records: 0,
    total_bytes: 0,
    malformed_lines: 0,
    malformed_by_kind: {},
    blank_lines: 0,
    by_schema: {},
    bytes_by_schema: {},
    by_type: {},
    by_status: {},
    by_policy: {},
    earliest_timestamp: null,
    latest_timestamp: null,
    expired_per_schema: {},
    files: [],
    files_skipped: [],
    size_warning: false,
    size_warning_bytes: profile.sizeWarningBytes,
    last_cleanup: null,
    files_scanned: 0,
    duration_ms: 0,
  };
  if (!profile.enabled) {
    return report;
  }

  const layout = await discoverLayout(profile.logPath, profile.name);
  report.files_skipped = layout.skipped.map((skipped) => ({ path: skipped.name, reason: skipped.reason }));
  const schemasFile = await readSchemasFile(layout.schemasPath);
  const retention: RetentionInputs = {
    configRetention: profile.retention,
    schemasFileRetention: schemasFile.retention,
    profileRetentionDays: profile.retentionDays,
  };
  const context: ScanContext = {
    rules: new RetentionRules(retention, nowMs),
    retention,
    scanner: new LineScanner({ timestampField: profile.timestampField, timestampUnit: profile.timestampUnit, extractLabels: true }),
    scanBuffers: null,
  };

  const bySchema = new Map<string, number>();
  const bytesBySchema = new Map<string, number>();
  const byType = new Map<string, number>();
  const byStatus = new Map<string, number>();
  const byPolicy = new Map<string, number>();
  const expired = new Map<string, number>();
  const malformedByKind = new Map<string, number>();
  let earliestMs = Infinity;
  let latestMs = -Infinity;

  try {
    for (const file of layout.files) {
      let current: Awaited<ReturnType<typeof currentSummary>>;
      try {
        current = await currentSummary(file, index, context);
      } catch (error) {
        // An error is never reported as zero: totals without an unreadable file would look healthy.
        index.delete(file.name);
        throw unreadableFileError(error, file.path);
      }
      const { summary, scanned, state } = current;
      if (scanned) {
        report.files_scanned++;
      }
      if (summary === null) {
        request.logger?.warn({ profile: profile.name, file: file.name }, 'log file changed while stats read it; counted at the next call');
        continue;
      }

      const tally = tallyFromSummary(summary, context.rules) ?? new FileTally(false);
      let fileEarliest = Infinity;
      let fileLatest = -Infinity;
      for (const [key, schema] of tally.schemas) {
        bySchema.set(key, (bySchema.get(key) ?? 0) + schema.records);
        bytesBySchema.set(key, (bytesBySchema.get(key) ?? 0) + schema.bytes);
        if (schema.expired > 0) {
          expired.set(key, (expired.get(key) ?? 0) + schema.expired);
        }
        fileEarliest = Math.min(fileEarliest, schema.earliestMs);
        fileLatest = Math.max(fileLatest, schema.latestMs);
      }
      earliestMs = Math.min(earliestMs, fileEarliest);
      latestMs = Math.max(latestMs, fileLatest);
      if (summary.facets !== null) {
        addCounts(byType, summary.facets.byType);
        addCounts(byStatus, summary.facets.byStatus);
        addCounts(byPolicy, summary.facets.byPolicy);
      }
      addCounts(malformedByKind, summary.malformedByKind);

      report.total_records += summary.records;
      report.total_bytes += state.size;
      report.malformed_lines += summary.malformed;
      report.blank_lines += summary.blankLines;
      report.files.push({
        path: file.name,
        bytes: state.size,
        records: summary.records,
        earliest_timestamp: formatInstant(fileEarliest),
        latest_timestamp: formatInstant(fileLatest),
        active: file.active,
        malformed_lines: summary.malformed,
        partial_last_line: summary.partialTailBytes > 0,
        gzip: file.gzip,
      });
    }
  } finally {
    // Every scan of this call has finished, so no thread reads the buffers any more.
    context.scanBuffers?.release();
  }

  index.retainOnly(new Set(layout.files.map((file) => file.name)));
  await index.save();

  report.by_schema = sortedObject(bySchema);
  report.bytes_by_schema = sortedObject(bytesBySchema);
  report.by_type = sortedObject(byType);
  report.by_status = sortedObject(byStatus);
  report.by_policy = sortedObject(byPolicy);
  report.expired_per_schema = sortedObject(expired);
  report.malformed_by_kind = sortedObject(malformedByKind);
  report.earliest_timestamp = formatInstant(earliestMs);
  report.latest_timestamp = formatInstant(latestMs);
  report.size_warning = report.total_bytes > profile.sizeWarningBytes;
  report.last_cleanup = toLastCleanup(await readLastCleanup(profile.logPath));
  report.duration_ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
  return report;
}

function toLastCleanup(record: CleanupHistoryRecord | null): LastCleanup | null {
  return record === null ? null : { at: record.at, status: record.status, deleted: record.deleted };
}
