/**
 * An export run over one profile's log: check the destination, classify every line of
 * the log with the cleanup engine's scanner (staging.ts), and write the records with
 * writeArchive. Shared by `POST /export` and `audit-retention export`.
 */

import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { ProfileSettings } from '../../config/load.js';
import { ErrorCode, RetentionError } from '../errors.js';
import { discoverLayout } from '../layout.js';
import type { Logger } from '../logger.js';
import { preloadDuckDB, writeArchive, type ArchiveFormat, type ArchiveOptions } from './archive.js';
import { resolveDestination } from './destination.js';
import { createWorkDirectory, removeStaleWorkDirectories } from './files.js';
import { formatInstantMicros, parseFilters, type FilterInput, type RecordFilters } from './filters.js';
import type { DroppedField } from './sql.js';
import { changedInPlaceFiles, closeInPlaceFiles, stageInPlaceFile, type InPlaceFile } from './in-place.js';
import { stageLogFiles, type StagingResult } from './staging.js';

export interface ExportRequest {
  profile: ProfileSettings;
  /** Directory that destinations are relative to (AUDIT_RETENTION_EXPORT_DIR). */
  exportDirectory: string;
  format: ArchiveFormat;
  /** Name of the file, or of the directory for partitioned Parquet, below the export directory. */
  destination: string;
  partition?: 'day' | undefined;
  overwrite?: boolean | undefined;
  filters?: FilterInput | undefined;
  /** The run's clock in epoch ms; a relative `since` counts back from it. */
  nowMs: number;
  logger?: Logger | undefined;
}

export interface ExportOutcome {
  profile: string;
  format: ArchiveFormat;
  /** The destination relative to the export directory, `/`-separated. */
  name: string;
  /** Absolute path of the destination. */
  path: string;
  logPath: string;
  partition: 'day' | null;
  compression: 'gzip' | 'none';
  recordsExported: number;
  bytes: number;
  /** 1, or the number of Parquet files in a partitioned directory. */
  filesWritten: number;
  columns: string[];
  filters: RecordFilters;
  /** Valid records found in the log, before filters. */
  recordsRead: number;
  malformedLines: number;
  malformedByKind: Record<string, number>;
  blankLines: number;
  partialLastLines: string[];
  filesRead: string[];
  filesSkipped: { path: string; reason: string }[];
  droppedFields: DroppedField[];
  repairedRecords: number;
  leftoversRemoved: string[];
  /** Time spent staging the record lines, detecting the schema, writing the output, and fsync and rename, in ms. */
  timings: { stagingMs: number; detectMs: number; writeMs: number; publishMs: number };
  durationMs: number;
}

/** Runs one export. Throws a RetentionError for invalid input (400), an existing destination (409) and failures. */
export async function runExport(request: ExportRequest): Promise<ExportOutcome> {
  const startedAt = performance.now();
  const { profile, format, logger } = request;

  const filters = parseFilters(request.filters ?? {}, request.nowMs);
  if (request.partition !== undefined && format !== 'parquet') {
    throw new RetentionError(
      ErrorCode.INVALID_INPUT,
      `Invalid partition '${request.partition}' for format ${format}: only parquet exports can be partitioned. Remove partition, or use format parquet.`,
    );
  }
  const compression = (format === 'csv' || format === 'jsonl') && request.destination.endsWith('.gz') ? 'gzip' : 'none';
  const overwrite = request.overwrite ?? false;

  const destination = await resolveDestination(request.exportDirectory, request.destination, { overwrite, directory: request.partition !== undefined });
  const leftoversRemoved = await removeStaleWorkDirectories(dirname(destination.path));
  if (leftoversRemoved.length > 0) {
    logger?.warn({ directory: dirname(destination.path), removed: leftoversRemoved }, 'removed work directories of interrupted exports');
  }

  const layout = await discoverLayout(profile.logPath, profile.name);
  preloadDuckDB();
  const workDirectory = await createWorkDirectory(destination.path);
  let inPlace: InPlaceFile[] = [];
  try {
    const stagingStart = performance.now();
    const staged = await stageLogFiles(layout.files, join(workDirectory, 'staging'), {
      scanner: { timestampField: profile.timestampField, timestampUnit: profile.timestampUnit },
      collectColumns: true,
      readInPlace: true,
    });
    inPlace = staged.inPlace;
    const stagingMs = Math.round(performance.now() - stagingStart);
    const archive = await writeArchive(staged.inputs, format, destination.path, {
      timestampField: profile.timestampField,
      timestampUnit: profile.timestampUnit,
      filters,
      partition: request.partition,
      compression,
      overwrite,
      longestLineBytes: staged.longestLineBytes,
      expectedRecords: staged.records,
      shownDestination: destination.name,
      logger,
      columns: staged.columns ?? undefined,
      checkInputs: createInputCheck(staged, join(workDirectory, 'restaged')),
      inputNames: new Map(staged.inPlace.map((file) => [file.readPath, file.name])),
    });

    const filesSkipped = [
      ...layout.skipped.map((skipped) => ({ path: skipped.name, reason: skipped.reason })),
      ...staged.filesVanished.map((name) => ({ path: name, reason: 'removed after the export listed the log directory, for example by a cleanup or log rotation' })),
    ];
    return {
      profile: profile.name,
      format,
      name: destination.name,
      path: destination.path,
      logPath: profile.logPath,
      partition: request.partition ?? null,
      compression,
      recordsExported: archive.records,
      bytes: archive.bytes,
      filesWritten: archive.files,
      columns: archive.columns,
      filters,
      recordsRead: staged.records,
      malformedLines: staged.malformed,
      malformedByKind: staged.malformedByKind,
      blankLines: staged.blankLines,
      partialLastLines: staged.partialLastLines,
      filesRead: staged.filesRead,
      filesSkipped,
      droppedFields: archive.droppedFields,
      repairedRecords: staged.staging.repairedRecords + staged.repairedRecords + archive.repairedRecords,
      leftoversRemoved,
      timings: { stagingMs, ...archive.timings },
      durationMs: Math.round(performance.now() - startedAt),
    };
  } finally {
    await closeInPlaceFiles(inPlace);
    await rm(workDirectory, { recursive: true, force: true });
  }
}

/**
 * Returns the `checkInputs` of an export. It finds the log files read in place that
 * changed after their scan, copies their scanned bytes into staging under `directory`,
 * and returns the inputs with those copies in their place. When DuckDB read fewer or
 * more records than the scan counted, every file read in place is copied. It returns
 * null when nothing changed.
 *
 * Every line of a file read in place is a record, and DuckDB reads at most one row per
 * line or fails. So no file can make up for another's shortfall, and an equal total
 * means that each file yielded its records.
 */
export function createInputCheck(staged: StagingResult, directory: string): NonNullable<ArchiveOptions['checkInputs']> {
  const copied = new Set<string>();
  return async (inputs, recordsRead) => {
    const countMismatch = recordsRead !== undefined && recordsRead !== staged.records;
    const suspects = countMismatch ? staged.inPlace : await changedInPlaceFiles(staged.inPlace);
    const replacements = new Map<string, string[]>();
    for (const file of suspects) {
      if (copied.has(file.readPath)) {
        continue;
      }
      if (!inputs.includes(file.readPath)) {
        if (countMismatch) {
          continue;
        }
        // The inputs hold a copy that the repair of rejected lines made after the scan, which may differ from what the scan counted.
        throw new RetentionError(ErrorCode.EXPORT_FAILED, `Could not export ${file.name}: it changed while the export read it. Nothing was published; run the export again.`);
      }
      const copy = await stageInPlaceFile(file, join(directory, String(copied.size)));
      copied.add(file.readPath);
      replacements.set(file.readPath, copy.paths);
    }
    if (replacements.size === 0) {
      return null;
    }
    return inputs.flatMap((input) => replacements.get(input) ?? [input]);
  };
}

/** Builds the response of `POST /export`, which `audit-retention export --json` prints too. */
export function exportResponse(outcome: ExportOutcome) {
  const { filters } = outcome;
  return {
    status: 'success' as const,
    message: `Exported ${outcome.recordsExported} records`,
    records_exported: outcome.recordsExported,
    path: outcome.name,
    bytes: outcome.bytes,
    details: {
      profile: outcome.profile,
      format: outcome.format,
      destination: outcome.path,
      log_path: outcome.logPath,
      partition: outcome.partition,
      compression: outcome.compression,
      files_written: outcome.filesWritten,
      columns: outcome.columns,
      filters: {
        since: filters.sinceMicros === undefined ? null : formatInstantMicros(filters.sinceMicros),
        until: filters.untilMicros === undefined ? null : formatInstantMicros(filters.untilMicros),
        schema: filters.fields?.schemaName ?? null,
        operation_type: filters.fields?.operationType ?? null,
        operation_name: filters.fields?.operationName ?? null,
        status: filters.fields?.operationStatus ?? null,
        policy: filters.fields?.policyDecision ?? null,
        user_id: filters.fields?.userId ?? null,
      },
      records_read: outcome.recordsRead,
      records_filtered_out: outcome.recordsRead - outcome.recordsExported,
      malformed_lines: outcome.malformedLines,
      malformed_by_kind: outcome.malformedByKind,
      blank_lines: outcome.blankLines,
      partial_last_lines: outcome.partialLastLines,
      files_read: outcome.filesRead,
      files_skipped: outcome.filesSkipped,
      fields_not_exported: outcome.droppedFields,
      records_repaired: outcome.repairedRecords,
      leftover_work_directories_removed: outcome.leftoversRemoved,
      timings_ms: {
        staging: outcome.timings.stagingMs,
        schema_detection: outcome.timings.detectMs,
        write: outcome.timings.writeMs,
        fsync_and_rename: outcome.timings.publishMs,
      },
      duration_ms: outcome.durationMs,
    },
  };
}

/** Formats the summary that `audit-retention export` prints. */
export function exportText(outcome: ExportOutcome): string {
  const lines = [`Exported ${outcome.recordsExported} records to ${outcome.path} (${outcome.bytes} bytes).`];
  if (outcome.recordsRead !== outcome.recordsExported) {
    lines.push(`Filters left out ${outcome.recordsRead - outcome.recordsExported} of ${outcome.recordsRead} records.`);
  }
  if (outcome.malformedLines > 0) {
    const kinds = Object.entries(outcome.malformedByKind)
      .sort(([left], [right]) => (left < right ? -1 : 1))
      .map(([kind, count]) => `${kind} ${count}`)
      .join(', ');
    lines.push(`Left out ${outcome.malformedLines} malformed lines (${kinds}).`);
  }
  for (const file of outcome.partialLastLines) {
    lines.push(`Left out the last line of ${file}, which has no line feed yet.`);
  }
  for (const field of outcome.droppedFields) {
    lines.push(`Field '${field.field}' not exported: ${field.reason}.`);
  }
  for (const skipped of outcome.filesSkipped) {
    lines.push(`Skipped ${skipped.path}: ${skipped.reason}.`);
  }
  return `${lines.join('\n')}\n`;
}
