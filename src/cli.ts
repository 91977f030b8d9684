#!/usr/bin/env node
/**
 * The `audit-retention` command. Text goes to stdout, errors to stderr; the exit
 * code is 0 for success, dry run and skip, and 1 for any error.
 */

import { readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';

import type { Logger as PinoLogger } from 'pino';

import type { Settings } from './config/load.js';
import { ARCHIVE_FORMATS, type CleanupArchiveFormat } from './core/archive-sink.js';
import { isRetentionError } from './core/errors.js';
import { cleanupResponse, cleanupText, statsText } from './core/report.js';
import type { AuditRetention } from './service.js';

// The config loader, the service and pino are imported once a command needs them,
// so that --help, --version and usage errors return without loading them.

const USAGE = `Usage: audit-retention <command> [options]

Commands:
  serve                      Start the HTTP service on HOST:PORT (default 127.0.0.1:8080).
  cleanup                    Delete expired records.
      --dry-run              Report what would be deleted; change no log file.
      --json                 Print the JSON object of POST /cleanup instead of text.
      --profile NAME         Profile of the config file (default: its 'profile:' key).
      --lock-timeout-ms MS   Maximum wait for the writers' lock per file, in ms.
      --archive FORMAT       First write the records to delete to an archive file
                             (jsonl, parquet or duckdb) under EXPORT_DIR/archive/PROFILE.
  stats                      Show record counts, sizes and expired records per schema.
      --json                 Print the JSON object of GET /stats instead of text.
      --profile NAME         Profile of the config file.
  export                     Write records to a file under the export directory
                             (AUDIT_RETENTION_EXPORT_DIR, default ./exports beside the config).
      --format F             duckdb, parquet, csv or jsonl (csv and jsonl: gzip when NAME ends with .gz).
      --out NAME             File name below the export directory.
      --partition day        parquet only: hive folders date=YYYY-MM-DD/ under NAME.
      --since WHEN           Records at or after WHEN: 30d, 2h, 10m, 45s ago, or an ISO 8601 instant.
      --until WHEN           Records before WHEN, an ISO 8601 instant.
      --schema S, --operation-type T, --operation-name N, --status S, --policy P, --user U
                             Records whose schema_name, operation_type, operation_name,
                             operation_status, policy_decision or user_id equals the value.
      --overwrite            Replace NAME when it exists.
      --json                 Print the JSON object of POST /export instead of text.
      --profile NAME         Profile of the config file.
  openapi                    Print the OpenAPI document of the HTTP API.

Options for every command:
  --config FILE              Config file (default: AUDIT_RETENTION_CONFIG, then
                             ./audit-retention.yml, then ./mxcp-site.yml).
  --help                     Show this text.
  --version                  Show the version.
`;

class UsageError extends Error {}

function readVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return packageJson.version;
}

/**
 * Destination of the one-shot commands' logs: each line is written to stderr at once.
 * A line that cannot be written, such as on a full disk behind a redirected stderr,
 * is dropped, because the exit code and the report carry the outcome anyway. pino's
 * own destination (sonic-boom 4.2) retries such a write forever when the process exits.
 */
const stderrDestination = {
  write(line: string): void {
    try {
      writeSync(2, line);
    } catch {
      // Dropped, as above.
    }
  },
};

/** Logger of the one-shot commands: pino JSON on stderr, warnings and errors only unless LOG_LEVEL sets another level. */
async function commandLogger(settings: Settings | null): Promise<PinoLogger> {
  const { pino } = await import('pino');
  const level = process.env['LOG_LEVEL'] !== undefined && settings !== null ? settings.logLevel : 'warn';
  return pino({ level }, stderrDestination);
}

/** Reads the config through the loader, which brings the YAML parser and the validators with it. */
async function readSettings(...args: Parameters<typeof import('./config/load.js').loadSettings>): Promise<Settings> {
  const { loadSettings } = await import('./config/load.js');
  return loadSettings(...args);
}

async function createService(settings: Settings): Promise<AuditRetention> {
  const { AuditRetention: Service } = await import('./service.js');
  return new Service(settings);
}

function parseCommandLine(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      profile: { type: 'string' },
      'lock-timeout-ms': { type: 'string' },
      archive: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      partition: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      schema: { type: 'string' },
      'operation-type': { type: 'string' },
      'operation-name': { type: 'string' },
      status: { type: 'string' },
      policy: { type: 'string' },
      user: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      version: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 1) {
    throw new UsageError(`Unexpected argument '${positionals[1]}'.`);
  }
  return { command: positionals[0], options: values };
}

function parseArchiveFormat(text: string | undefined): CleanupArchiveFormat | undefined {
  if (text === undefined) {
    return undefined;
  }
  if (!(ARCHIVE_FORMATS as readonly string[]).includes(text)) {
    throw new UsageError(`Invalid --archive '${text}'. Use one of ${ARCHIVE_FORMATS.join(', ')}.`);
  }
  return text as CleanupArchiveFormat;
}

function parseLockTimeout(text: string | undefined): number | undefined {
  if (text === undefined) {
    return undefined;
  }
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 600_000) {
    throw new UsageError(`Invalid --lock-timeout-ms '${text}'. Use a whole number of milliseconds from 0 to 600000.`);
  }
  return value;
}

/** Loads the HTTP layer on demand, so one-shot commands start without Fastify. */
async function loadBuildApp() {
  const { buildApp } = await import('./app.js');
  return buildApp;
}

async function serve(settings: Settings): Promise<void> {
  const { serve: startService } = await import('./serve.js');
  await startService(settings);
}

async function cleanup(settings: Settings, options: ReturnType<typeof parseCommandLine>['options']): Promise<number> {
  const service = await createService(settings);
  const logger = await commandLogger(settings);
  for (const warning of settings.warnings) {
    logger.warn({ configPath: settings.configPath }, warning);
  }
  const outcome = await service.cleanup({
    profile: options.profile,
    dryRun: options['dry-run'],
    lockTimeoutMs: parseLockTimeout(options['lock-timeout-ms']),
    archive: parseArchiveFormat(options.archive),
    logger,
    requestedBy: 'cli',
  });

  // A failed run prints its text only when it deleted something, so stdout never reads as a clean run.
  if (options.json) {
    process.stdout.write(`${JSON.stringify(cleanupResponse(outcome), null, 2)}\n`);
  } else if (outcome.error === null || outcome.totalDeleted > 0) {
    process.stdout.write(cleanupText(outcome));
  }
  if (outcome.error !== null) {
    process.stderr.write(`Error: ${outcome.error.message}\n`);
    return 1;
  }
  return 0;
}

async function stats(settings: Settings, options: ReturnType<typeof parseCommandLine>['options']): Promise<number> {
  const service = await createService(settings);
  const report = await service.stats({ profile: options.profile, logger: await commandLogger(settings) });
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : statsText(report));
  return 0;
}

/** Prints the OpenAPI document, which depends on the routes only, so no config is read. */
async function printOpenApi(): Promise<void> {
  const buildApp = await loadBuildApp();
  const app = await buildApp({ ...(await readSettings({ builtInOnly: true })), logLevel: 'silent' });
  await app.ready();
  process.stdout.write(`${JSON.stringify(app.swagger(), null, 2)}\n`);
  await app.close();
}

async function main(argv: string[]): Promise<number> {
  const { command, options } = parseCommandLine(argv);
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.version) {
    process.stdout.write(`${readVersion()}\n`);
    return 0;
  }
  if (command === undefined) {
    throw new UsageError('Missing command.');
  }

  if (command === 'openapi') {
    await printOpenApi();
    return 0;
  }

  const settings = await readSettings({ configPath: options.config });
  switch (command) {
    case 'serve':
      await serve(settings);
      return 0;
    case 'cleanup':
      return cleanup(settings, options);
    case 'stats':
      return stats(settings, options);
    case 'export': {
      // Loaded on demand, so that cleanup and stats do not pay for the export engine at start-up.
      const { exportCommand } = await import('./cli-export.js');
      return exportCommand(settings, options, (await createService(settings)).now(), await commandLogger(settings));
    }
    default:
      throw new UsageError(`Unknown command '${command}'.`);
  }
}

// Until main settles, an exit means the event loop ran dry with work pending: report it, never exit 0.
let settled = false;
process.exitCode = 1;

// A reader that stops early, such as `| head`, closes the pipe. The command's work and
// exit code are kept, and only the rest of stdout is dropped, without a stack trace.
// Any other write error, such as a full disk behind a redirect, loses output, so the command exits 1.
let stdoutFailed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED' || stdoutFailed) {
    return;
  }
  stdoutFailed = true;
  process.exitCode = 1;
  process.stderr.write(`Error: could not write the output to stdout: ${error.message}\n`);
});
process.on('exit', () => {
  if (!settled) {
    process.stderr.write('Error: the command stopped before it finished (an internal operation never completed); nothing after that point was done.\n');
  }
});

main(process.argv.slice(2)).then(
  (exitCode) => {
    settled = true;
    process.exitCode = stdoutFailed ? 1 : exitCode;
  },
  (error: unknown) => {
    settled = true;
    const errno = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
    if (error instanceof UsageError || errno.startsWith('ERR_PARSE_ARGS_')) {
      process.stderr.write(`Error: ${(error as Error).message}\n\n${USAGE}`);
    } else if (isRetentionError(error)) {
      if (process.argv.includes('--json')) {
        process.stdout.write(`${JSON.stringify({ status: 'error', message: error.message, code: error.code }, null, 2)}\n`);
      }
      process.stderr.write(`Error: ${error.message}\n`);
    } else if (errno === 'EADDRINUSE' || errno === 'EACCES') {
      process.stderr.write(`Error: could not listen: ${(error as Error).message}. Set PORT (and HOST) to a free address.\n`);
    } else {
      process.stderr.write(`Error: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.exitCode = 1;
  },
);
