/**
 * writeArchive: turns staging NDJSON files (record lines only) into a DuckDB
 * database, Parquet, CSV or JSON-lines file, loaded in bulk by DuckDB's own JSON
 * reader, and publishes it atomically.
 *
 * Every format has the columns of the table `audit_logs` of the DuckDB format. They are
 * each record field, in the order in which DuckDB's schema detection over all lines finds
 * them (objects and arrays as JSON). `timestamp` is an ISO string in UTC with microseconds
 * (`2026-01-01T04:30:00.123456Z`, more digits truncated), and `timestamp_original` has the
 * timestamp as the record wrote it. The DuckDB format adds the view `logs`, whose
 * `timestamp` is a TIMESTAMPTZ.
 *
 * `@duckdb/node-api` is imported on first use only, because loading it costs about
 * 38 MiB of memory that a process that only cleans up should not pay.
 */

import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { DuckDBConnection } from '@duckdb/node-api';

import { ErrorCode, RetentionError, isRetentionError } from '../errors.js';
import { MAX_LINE_BYTES } from '../file-cleanup.js';
import type { Logger } from '../logger.js';
import { createWorkDirectory, fsyncTree, publish, treeSize } from './files.js';
import type { ObservedColumn } from './columns.js';
import type { RecordFilters } from './filters.js';
import { repairStagingFiles } from './repair.js';
import {
  PARTITION_COLUMN,
  TIMESTAMP_COLUMN,
  buildSelect,
  planColumns,
  planObservedColumns,
  quoteIdentifier,
  quoteLiteral,
  type ColumnPlan,
  type DetectedColumn,
  type DroppedField,
} from './sql.js';

export const ARCHIVE_FORMATS = ['duckdb', 'parquet', 'csv', 'jsonl'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/** Name of the table in a DuckDB export. */
export const TABLE_NAME = 'audit_logs';
/** Name of the view in a DuckDB export, with `timestamp` as TIMESTAMPTZ. */
export const VIEW_NAME = 'logs';

/** DuckDB's default maximum_object_size of read_json, in bytes. */
const DEFAULT_MAXIMUM_OBJECT_SIZE = 16 * 1024 * 1024;

export interface ArchiveOptions {
  /** Record field with the timestamp; default `timestamp`. */
  timestampField?: string | undefined;
  /** Unit of numeric timestamps; default `ms`. */
  timestampUnit?: 'ms' | 's' | undefined;
  filters?: RecordFilters | undefined;
  /** `day` writes Parquet as hive partitions `date=YYYY-MM-DD/`; the destination is then a directory. */
  partition?: 'day' | undefined;
  /** Compression of csv and jsonl; default gzip when the destination ends with `.gz`. */
  compression?: 'gzip' | 'none' | undefined;
  /** Replace an existing destination; default false, which raises DESTINATION_EXISTS. */
  overwrite?: boolean | undefined;
  /** Length of the longest staging line, in bytes, when known; longer lines than DuckDB's default need it. */
  longestLineBytes?: number | undefined;
  /** Number of records in the staging files, when known; checked against the rows written when no filter applies. */
  expectedRecords?: number | undefined;
  /** Name of the destination in messages; default its path. */
  shownDestination?: string | undefined;
  logger?: Logger | undefined;
  /**
   * Kinds of value per top-level key, from the export's pass over the log (see
   * columns.ts). Without them, DuckDB detects the columns over every input line.
   */
  columns?: readonly ObservedColumn[] | undefined;
  /**
   * Called after DuckDB wrote the output from `inputs` and before it is published,
   * with the number of records read when no filter applies. Returns null when the
   * inputs were as expected, or the inputs to write the output from again, once.
   */
  checkInputs?: ((inputs: readonly string[], recordsRead: number | undefined) => Promise<readonly string[] | null>) | undefined;
  /** Names to show in error messages in place of input paths, such as a log file's name for its `/proc/self/fd` path. */
  inputNames?: ReadonlyMap<string, string> | undefined;
}

export interface ArchiveResult {
  records: number;
  /** Size of the file, or of all files of a partitioned directory, in bytes. */
  bytes: number;
  /** 1, or the number of Parquet files of a partitioned directory. */
  files: number;
  /** Output column names, in order. */
  columns: string[];
  droppedFields: DroppedField[];
  /** Staging lines rewritten so that DuckDB accepts them (lone surrogate escapes, duplicate keys). */
  repairedRecords: number;
  /** Time spent in DuckDB's schema detection, in writing the output, and in fsync and rename, in ms. */
  timings: { detectMs: number; writeMs: number; publishMs: number };
}

type DuckDBModule = typeof import('@duckdb/node-api');

let duckdbModule: Promise<DuckDBModule> | null = null;

/** Imports the DuckDB client once, on first use. */
function loadDuckDB(): Promise<DuckDBModule> {
  duckdbModule ??= import('@duckdb/node-api');
  return duckdbModule;
}

/**
 * Starts importing the DuckDB client, so that an export loads it while it reads the
 * log. A failure surfaces in writeArchive, which awaits the same import.
 */
export function preloadDuckDB(): void {
  loadDuckDB().catch(() => undefined);
}

/**
 * Writes the records of `staging` (one file or several, NDJSON, record lines only)
 * to `destinationPath` in `format`, and returns the count and size. The output is
 * written in a hidden work directory beside the destination, fsynced, and moved into
 * place with one rename (see publish). On failure nothing appears at the destination.
 * The caller checks that the destination is a path it may write.
 */
export async function writeArchive(
  staging: string | readonly string[],
  format: ArchiveFormat,
  destinationPath: string,
  options: ArchiveOptions = {},
): Promise<ArchiveResult> {
  const shown = options.shownDestination ?? destinationPath;
  if (options.partition !== undefined && format !== 'parquet') {
    throw new RetentionError(ErrorCode.INVALID_INPUT, `Invalid partition '${options.partition}' for format ${format}: only parquet exports can be partitioned.`);
  }
  let files = typeof staging === 'string' ? [staging] : [...staging];
  const workDirectory = await createWorkDirectory(destinationPath);

  try {
    const duckdb = await loadDuckDB();
    let repairedRecords = 0;
    let maximumObjectSize = Math.max(DEFAULT_MAXIMUM_OBJECT_SIZE, (options.longestLineBytes ?? 0) + 1);
    let written: WrittenOutput | null = null;
    let inputsReplaced = false;
    const unfiltered = options.filters === undefined || !hasFilters(options.filters);

    for (let attempt = 0; written === null; attempt++) {
      try {
        written = await writeOutput(duckdb, files, format, workDirectory, { ...options, maximumObjectSize });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (attempt < 2 && /maximum_object_size/.test(message) && maximumObjectSize <= MAX_LINE_BYTES) {
          maximumObjectSize = MAX_LINE_BYTES + 1;
          continue;
        }
        if (attempt < 2 && repairedRecords === 0 && /Malformed JSON|duplicate key/i.test(message)) {
          const repaired = await repairStagingFiles(files, join(workDirectory, `repaired-${attempt}`));
          if (repaired.repairedRecords > 0) {
            options.logger?.warn({ destination: shown, repairedRecords: repaired.repairedRecords }, 'rewrote staging lines that DuckDB rejected');
            files = repaired.paths;
            repairedRecords = repaired.repairedRecords;
            continue;
          }
        }
        throw translateError(error, shown, options.inputNames);
      }

      const replacement = (await options.checkInputs?.(files, unfiltered ? written.records : undefined)) ?? null;
      if (replacement !== null) {
        if (inputsReplaced) {
          throw new RetentionError(ErrorCode.EXPORT_FAILED, `Could not write the export ${shown}: log files changed while the export read them. Nothing was published; run the export again.`);
        }
        options.logger?.warn({ destination: shown }, 'writing the export again, because log files that DuckDB read in place changed or did not yield their records');
        inputsReplaced = true;
        files = [...replacement];
        written = null;
      }
    }

    if (unfiltered && options.expectedRecords !== undefined && written.records !== options.expectedRecords) {
      throw new RetentionError(
        ErrorCode.EXPORT_FAILED,
        `Could not write the export ${shown}: DuckDB read ${written.records} records from the staging files, which hold ${options.expectedRecords}. Nothing was published; report this with the log file that caused it.`,
      );
    }

    const publishStart = performance.now();
    await fsyncTree(written.outputPath);
    const size = await treeSize(written.outputPath);
    await publish(written.outputPath, destinationPath, { overwrite: options.overwrite ?? false, shown });
    const publishMs = Math.round(performance.now() - publishStart);
    return {
      records: written.records,
      bytes: size.bytes,
      files: size.files,
      columns: written.columns,
      droppedFields: written.plan.droppedFields,
      repairedRecords,
      timings: { detectMs: written.detectMs, writeMs: written.writeMs, publishMs },
    };
  } catch (error) {
    throw translateError(error, shown, options.inputNames);
  } finally {
    await rm(workDirectory, { recursive: true, force: true });
  }
}

function hasFilters(filters: RecordFilters): boolean {
  return filters.sinceMicros !== undefined || filters.untilMicros !== undefined || Object.values(filters.fields ?? {}).some((value) => value !== undefined);
}

interface WrittenOutput {
  outputPath: string;
  records: number;
  plan: ColumnPlan;
  columns: string[];
  detectMs: number;
  writeMs: number;
}

/** Runs DuckDB over the staging files and writes the output inside the work directory. */
async function writeOutput(
  duckdb: DuckDBModule,
  files: readonly string[],
  format: ArchiveFormat,
  workDirectory: string,
  options: ArchiveOptions & { maximumObjectSize: number },
): Promise<WrittenOutput> {
  const attemptDirectory = await createAttemptDirectory(workDirectory);
  const outputPath = join(attemptDirectory, format === 'duckdb' ? 'output.duckdb' : 'output');
  const instance = await duckdb.DuckDBInstance.create(format === 'duckdb' ? outputPath : ':memory:', {
    // Spill files of large loads stay in the work directory, which is removed afterwards.
    temp_directory: join(attemptDirectory, 'spill'),
    // json, parquet and icu are built into the client; nothing may be downloaded.
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    const filesValue = duckdb.listValue([...files]);
    const timestampField = options.timestampField ?? TIMESTAMP_COLUMN;
    const detectStart = performance.now();
    const plan =
      options.columns === undefined
        ? planColumns(await detectColumns(connection, filesValue, files, options.maximumObjectSize), timestampField)
        : planObservedColumns(options.columns, timestampField);
    const writeStart = performance.now();

    const partitionByDay = options.partition === 'day';
    if (partitionByDay && plan.readColumns.some((column) => column.name.toLowerCase() === PARTITION_COLUMN)) {
      throw new RetentionError(
        ErrorCode.INVALID_INPUT,
        `Cannot partition by day: the records have a field '${PARTITION_COLUMN}', the name of the partition column. Export without partition, or as duckdb.`,
      );
    }

    const select = buildSelect(plan, {
      filesSql: '$files',
      timestampUnit: options.timestampUnit ?? 'ms',
      filters: options.filters,
      partitionByDay,
      maximumObjectSize: options.maximumObjectSize,
    });
    const parameters = { files: filesValue, ...select.parameters };

    let records: number;
    let columns: string[];
    if (format === 'duckdb') {
      await connection.run(`CREATE TABLE ${TABLE_NAME} AS ${select.sql}`, parameters);
      // CREATE TABLE AS reports no row count through the client, so count the table.
      const counted = await connection.runAndReadAll(`SELECT count(*) FROM ${TABLE_NAME}`);
      records = Number(counted.getRowsJS()[0]![0]);
      const timestamp = quoteIdentifier(TIMESTAMP_COLUMN);
      await connection.run(`CREATE VIEW ${VIEW_NAME} AS SELECT * REPLACE (CAST(${timestamp} AS TIMESTAMPTZ) AS ${timestamp}) FROM ${TABLE_NAME}`);
      await connection.run('CHECKPOINT');
      const described = await connection.runAndReadAll(`SELECT column_name FROM (DESCRIBE ${TABLE_NAME})`);
      columns = described.getRowsJS().map((row) => String(row[0]));
    } else {
      const copied = await connection.run(`COPY (${select.sql}) TO ${quoteLiteral(outputPath)} (${copyOptions(format, options)})`, parameters);
      records = copied.rowsChanged;
      const described = await connection.runAndReadAll(`SELECT column_name FROM (DESCRIBE ${select.sql})`, parameters);
      columns = described.getRowsJS().map((row) => String(row[0]));
      if (partitionByDay) {
        // A partitioned export without records is an empty directory.
        await mkdir(outputPath, { recursive: true });
      }
    }
    const detectMs = Math.round(writeStart - detectStart);
    return { outputPath, records, plan, columns, detectMs, writeMs: Math.round(performance.now() - writeStart) };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

let attemptCounter = 0;

async function createAttemptDirectory(workDirectory: string): Promise<string> {
  const path = join(workDirectory, `attempt-${++attemptCounter}`);
  await mkdir(path);
  return path;
}

/**
 * Detects the columns over every line of the staging files (sample_size = -1), so that
 * a field that first appears late, or changes type, is still found. Empty staging
 * files have no columns.
 */
async function detectColumns(
  connection: DuckDBConnection,
  filesValue: import('@duckdb/node-api').DuckDBListValue,
  files: readonly string[],
  maximumObjectSize: number,
): Promise<DetectedColumn[]> {
  let bytes = 0;
  for (const file of files) {
    bytes += (await stat(file)).size;
  }
  if (bytes === 0) {
    return [];
  }
  const described = await connection.runAndReadAll(
    `DESCRIBE SELECT * FROM read_json($files, format = 'newline_delimited', records = true, sample_size = -1, union_by_name = true, maximum_object_size = ${maximumObjectSize})`,
    { files: filesValue },
  );
  return described.getRowsJS().map((row) => ({ name: String(row[0]), type: String(row[1]) }));
}

/** Options of DuckDB's COPY statement for a format. */
function copyOptions(format: Exclude<ArchiveFormat, 'duckdb'>, options: ArchiveOptions): string {
  switch (format) {
    case 'parquet':
      return options.partition === 'day' ? `FORMAT parquet, COMPRESSION zstd, PARTITION_BY (${quoteIdentifier(PARTITION_COLUMN)})` : 'FORMAT parquet, COMPRESSION zstd';
    case 'csv':
      return `FORMAT csv, HEADER true, COMPRESSION ${options.compression === 'gzip' ? 'gzip' : 'none'}`;
    case 'jsonl':
      return `FORMAT json, COMPRESSION ${options.compression === 'gzip' ? 'gzip' : 'none'}`;
  }
}

/** Turns a DuckDB or file system failure into a RetentionError that names the destination. */
function translateError(error: unknown, shown: string, inputNames?: ReadonlyMap<string, string>): RetentionError {
  if (isRetentionError(error)) {
    return error;
  }
  let message = error instanceof Error ? error.message : String(error);
  // Longer paths first, so that `/proc/self/fd/2` does not replace the start of `/proc/self/fd/23`.
  const replacements = [...(inputNames ?? [])].sort(([left], [right]) => right.length - left.length);
  for (const [path, name] of replacements) {
    message = message.replaceAll(path, name);
  }
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT' || /No space left on device|Disk quota exceeded/i.test(message)) {
    return new RetentionError(ErrorCode.DISK_FULL, `Disk full: could not write the export ${shown}. Free space where the export directory lies and run it again; nothing was published.`, {
      cause: error,
    });
  }
  if (errno === 'EACCES' || errno === 'EPERM' || /Permission denied/i.test(message)) {
    return new RetentionError(
      ErrorCode.PERMISSION_DENIED,
      `Permission denied: could not write the export ${shown} (${message}). Grant the service user write access to the export directory.`,
      { cause: error },
    );
  }
  return new RetentionError(ErrorCode.EXPORT_FAILED, `Could not write the export ${shown}: ${message}`, { cause: error });
}
