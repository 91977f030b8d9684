/**
 * DuckDB as a comparison for the benchmark: one `COPY (SELECT …) TO …` that keeps
 * the records at or after their schema's cutoff, in one of several ways of reading
 * the log. Run as its own process so that its start-up and peak RSS are measured.
 *
 * Usage: node dist/bench/duckdb-filter.js VARIANT OUTPUT CUTOFFS_JSON INPUT...
 * where CUTOFFS_JSON is {"perSchema": {"schema": "cutoff"}, "default": "cutoff"}.
 */

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { Cutoffs } from './data.js';

export interface DuckdbVariant {
  name: string;
  /** Description of how the variant reads and filters, for the report. */
  description: string;
  buildSql: (inputs: readonly string[], output: string, cutoffs: Cutoffs) => string[];
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function fileList(inputs: readonly string[]): string {
  return `[${inputs.map(sqlString).join(', ')}]`;
}

/** Builds a CASE expression that maps `schemaColumn` to its cutoff, each cutoff rendered by `literal`. */
function cutoffExpression(schemaColumn: string, cutoffs: Cutoffs, literal: (cutoff: string) => string): string {
  const branches = Object.entries(cutoffs.perSchema).map(([schema, cutoff]) => `WHEN ${sqlString(schema)} THEN ${literal(cutoff)}`);
  return `CASE ${schemaColumn} ${branches.join(' ')} ELSE ${literal(cutoffs.default)} END`;
}

/**
 * Reads every line as one VARCHAR column: no quote or escape character, and a
 * delimiter (unit separator, 0x1f) that JSON text never contains unescaped. DuckDB
 * drops lines that are not valid UTF-8 (`ignore_errors`) and reads a CR LF line
 * as two empty lines, so those lines cannot come out as they went in.
 */
function rawLines(inputs: readonly string[]): string {
  return (
    `read_csv(${fileList(inputs)}, columns = {'line': 'VARCHAR'}, header = false, auto_detect = false, ` +
    `delim = chr(31), quote = '', escape = '', new_line = '\\n', strict_mode = false, ignore_errors = true)`
  );
}

/** Writes one VARCHAR column back as raw lines, without quoting. */
function rawCopyOptions(): string {
  return `(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(31))`;
}

/**
 * The variants. All but `read_json` compare timestamps as text, which orders them
 * correctly only because every timestamp in the data is UTC in one form
 * (`YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`). Only `read_json` compares parsed instants.
 * The text variants keep lines without a timestamp, as our cleanup does.
 */
export const DUCKDB_VARIANTS: readonly DuckdbVariant[] = [
  {
    name: 'read_json',
    description: "read_json(format='newline_delimited', ignore_errors=true) with detected types, COPY TO (FORMAT json)",
    buildSql: (inputs, output, cutoffs) => [
      `SET TimeZone = 'UTC'`,
      `COPY (SELECT * FROM read_json(${fileList(inputs)}, format = 'newline_delimited', ignore_errors = true) ` +
        `WHERE CAST("timestamp" AS TIMESTAMPTZ) >= ${cutoffExpression('schema_name', cutoffs, (cutoff) => `TIMESTAMPTZ ${sqlString(cutoff)}`)}) ` +
        `TO ${sqlString(output)} (FORMAT json)`,
    ],
  },
  {
    name: 'read_json_objects',
    description: "read_json_objects(format='newline_delimited', ignore_errors=true), filter on json->>'$.timestamp', raw text out",
    buildSql: (inputs, output, cutoffs) => [
      `COPY (SELECT json FROM (SELECT json, json ->> '$.timestamp' AS ts, json ->> '$.schema_name' AS schema_name ` +
        `FROM read_json_objects(${fileList(inputs)}, format = 'newline_delimited', ignore_errors = true) WHERE json IS NOT NULL) ` +
        `WHERE ts IS NULL OR ts >= ${cutoffExpression('schema_name', cutoffs, sqlString)}) ` +
        `TO ${sqlString(output)} ${rawCopyOptions()}`,
    ],
  },
  {
    name: 'lines_json_extract',
    description: 'read_csv of raw lines, try(json_extract_string(line, [timestamp, schema_name])), raw text out',
    buildSql: (inputs, output, cutoffs) => [
      `COPY (SELECT line FROM (SELECT line, try(json_extract_string(line, ['$.timestamp', '$.schema_name'])) AS fields FROM ${rawLines(inputs)}) ` +
        `WHERE fields IS NULL OR fields[1] IS NULL OR fields[1] >= ${cutoffExpression('fields[2]', cutoffs, sqlString)}) ` +
        `TO ${sqlString(output)} ${rawCopyOptions()}`,
    ],
  },
  {
    name: 'lines_instr',
    description: 'read_csv of raw lines, timestamp and schema_name found with instr/substr (no JSON parsing), raw text out',
    buildSql: (inputs, output, cutoffs) => [
      // NOTE: instr finds the first `"timestamp": "` and `"schema_name": "` anywhere in the line, nested or not. In this data they are the top-level members.
      `COPY (SELECT line FROM (SELECT line, nullif(instr(line, '"timestamp": "'), 0) AS timestamp_at, ` +
        `split_part(substr(line, instr(line, '"schema_name": "') + 16, 64), '"', 1) AS schema_name FROM ${rawLines(inputs)}) ` +
        `WHERE timestamp_at IS NULL OR substr(line, timestamp_at + 14, 32) >= ${cutoffExpression('schema_name', cutoffs, sqlString)}) ` +
        `TO ${sqlString(output)} ${rawCopyOptions()}`,
    ],
  },
];

async function main(argv: string[]): Promise<void> {
  const [variantName, output, cutoffJson, ...inputs] = argv;
  const variant = DUCKDB_VARIANTS.find((candidate) => candidate.name === variantName);
  if (variant === undefined || output === undefined || cutoffJson === undefined || inputs.length === 0) {
    const names = DUCKDB_VARIANTS.map((candidate) => candidate.name).join(', ');
    process.stderr.write(`Usage: node dist/bench/duckdb-filter.js VARIANT OUTPUT CUTOFFS_JSON INPUT...\nVariants: ${names}\n`);
    process.exitCode = 2;
    return;
  }

  // Loaded here, so that importing the variants does not load the native addon.
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    for (const statement of variant.buildSql(inputs, output, JSON.parse(cutoffJson) as Cutoffs)) {
      await connection.run(statement);
    }
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
}

if (isMainModule()) {
  await main(process.argv.slice(2));
}
