/** Fixtures of the export tests: a log in a temporary directory, export runs, and DuckDB to read the results back. */

import { join } from 'node:path';
import type { TestContext } from 'node:test';

import { DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';

import { selectProfile, type Settings } from '../src/config/load.js';
import type { ArchiveFormat } from '../src/core/export/archive.js';
import { runExport, type ExportOutcome } from '../src/core/export/run.js';
import type { FilterInput } from '../src/core/export/filters.js';
import { NOW_MS, temporaryDirectory, testSettings, writeConfig, writeText } from './helpers.js';

export interface ExportFixture {
  directory: string;
  configPath: string;
  logPath: string;
  exportDirectory: string;
  settings: Settings;
}

/** Writes `content` as the log `audit/logs.jsonl` of a fresh config; `extraAudit` adds lines to its audit section. */
export async function exportFixture(t: TestContext, content: string | Buffer, extraAudit = ''): Promise<ExportFixture> {
  const directory = await temporaryDirectory(t, 'audit-retention-export-');
  const configPath = await writeConfig(directory, extraAudit);
  const logPath = join(directory, 'audit', 'logs.jsonl');
  await writeText(logPath, content);
  const settings = testSettings(configPath);
  return { directory, configPath, logPath, exportDirectory: join(directory, 'exports'), settings };
}

export interface ExportCall {
  format: ArchiveFormat;
  destination: string;
  partition?: 'day';
  overwrite?: boolean;
  filters?: FilterInput;
}

/** Runs an export of the fixture's default profile at the test clock. */
export function exportLog(fixture: ExportFixture, call: ExportCall): Promise<ExportOutcome> {
  return runExport({
    profile: selectProfile(fixture.settings, undefined),
    exportDirectory: fixture.settings.exportDirectory,
    nowMs: NOW_MS,
    ...call,
  });
}

/**
 * Runs statements in one DuckDB connection and returns the rows of the last one.
 * `path` opens a database file read-write, so that DELETE works as a user would run it.
 */
export async function queryDuckDB(statements: string[], options: { path?: string; parameters?: Record<string, DuckDBValue> } = {}): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(options.path ?? ':memory:', { autoinstall_known_extensions: 'false' });
  const connection = await instance.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const [index, sql] of statements.entries()) {
      const reader = await connection.runAndReadAll(sql, index === statements.length - 1 ? options.parameters : undefined);
      rows = reader.getRowObjectsJS();
    }
    return rows;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
