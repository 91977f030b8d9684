/** The `audit-retention export` command: options to an export run, and its output. */

import type { Settings } from './config/load.js';
import { selectProfile } from './config/load.js';
import { ARCHIVE_FORMATS, type ArchiveFormat } from './core/export/archive.js';
import { exportResponse, exportText, runExport } from './core/export/run.js';
import { ErrorCode, RetentionError } from './core/errors.js';
import type { Logger } from './core/logger.js';

/** Options of `export` as util.parseArgs returns them. */
export interface ExportCommandOptions {
  format?: string | undefined;
  out?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  schema?: string | undefined;
  'operation-type'?: string | undefined;
  'operation-name'?: string | undefined;
  status?: string | undefined;
  policy?: string | undefined;
  user?: string | undefined;
  partition?: string | undefined;
  profile?: string | undefined;
  overwrite?: boolean | undefined;
  json?: boolean | undefined;
}

function invalidOption(message: string): RetentionError {
  return new RetentionError(ErrorCode.INVALID_INPUT, message);
}

/** Runs an export, prints its summary or JSON response, and returns the exit code. */
export async function exportCommand(settings: Settings, options: ExportCommandOptions, nowMs: number, logger: Logger): Promise<number> {
  if (options.format === undefined || !(ARCHIVE_FORMATS as readonly string[]).includes(options.format)) {
    throw invalidOption(`Missing or invalid --format ${JSON.stringify(options.format ?? '')}. Use one of ${ARCHIVE_FORMATS.join(', ')}.`);
  }
  if (options.out === undefined) {
    throw invalidOption(`Missing --out NAME: the file to write, relative to the export directory ${settings.exportDirectory}.`);
  }
  if (options.partition !== undefined && options.partition !== 'day') {
    throw invalidOption(`Invalid --partition ${JSON.stringify(options.partition)}. The only partitioning is day.`);
  }

  const outcome = await runExport({
    profile: selectProfile(settings, options.profile),
    exportDirectory: settings.exportDirectory,
    format: options.format as ArchiveFormat,
    destination: options.out,
    partition: options.partition as 'day' | undefined,
    overwrite: options.overwrite,
    filters: {
      since: options.since,
      until: options.until,
      schema: options.schema,
      operationType: options['operation-type'],
      operationName: options['operation-name'],
      status: options.status,
      policy: options.policy,
      userId: options.user,
    },
    nowMs,
    logger,
  });
  process.stdout.write(options.json === true ? `${JSON.stringify(exportResponse(outcome), null, 2)}\n` : exportText(outcome));
  return 0;
}
