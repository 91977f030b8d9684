/**
 * Reader of the MXCP schemas file `STEM_schemas.jsonl`: one schema definition a line,
 * such as `{"schema_name":"mxcp.endpoints","version":1,"retention_days":90,...}`.
 * Later lines for the same name and version replace earlier ones.
 */

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

import { ErrorCode, RetentionError, fromFileSystemError } from './errors.js';
import { parseRetentionValue, type RetentionDays, type SchemaFileRetention } from './retention.js';
import { DEFAULT_SCHEMA_VERSION } from './scanner.js';

export interface SchemasFile {
  retention: SchemaFileRetention;
  /** Lines that are not a JSON object with a string `schema_name`; they are ignored. */
  ignoredLines: number;
  /** False when the file does not exist. */
  found: boolean;
}

interface SchemaEntry {
  hasRetention: boolean;
  retentionValue: unknown;
}

/**
 * Reads the schemas file at `path`. A missing file gives no per-schema retention.
 * Throws SCHEMAS_INVALID, naming the schema, when a final entry sets a retention
 * that is not a whole number of days of at least 1 or null.
 */
export async function readSchemasFile(path: string): Promise<SchemasFile> {
  const entries = new Map<string, Map<number, SchemaEntry>>();
  let ignoredLines = 0;

  const input = createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === '') {
        continue;
      }
      const definition = parseDefinition(line);
      if (definition === null) {
        ignoredLines++;
        continue;
      }
      let versions = entries.get(definition.name);
      if (versions === undefined) {
        versions = new Map();
        entries.set(definition.name, versions);
      }
      versions.set(definition.version, definition.entry);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return { retention: new Map(), ignoredLines: 0, found: false };
    }
    throw fromFileSystemError(error, 'read', path);
  } finally {
    lines.close();
    input.destroy();
  }

  const retention = new Map<string, Map<number, RetentionDays | undefined>>();
  for (const [name, versions] of entries) {
    const days = new Map<number, RetentionDays | undefined>();
    for (const [version, entry] of versions) {
      if (!entry.hasRetention) {
        days.set(version, undefined);
        continue;
      }
      const parsed = parseRetentionValue(entry.retentionValue, null);
      if (parsed === undefined) {
        throw new RetentionError(
          ErrorCode.SCHEMAS_INVALID,
          `Invalid retention_days ${JSON.stringify(entry.retentionValue)} for schema '${name}' version ${version} in ${path}. ` +
            'Use a whole number of days of at least 1, or null to keep its records for good.',
        );
      }
      days.set(version, parsed);
    }
    retention.set(name, days);
  }

  return { retention, ignoredLines, found: true };
}

function parseDefinition(line: string): { name: string; version: number; entry: SchemaEntry } | null {
  let value: unknown;
  try {
    value = JSON.parse(line.charCodeAt(0) === 0xfeff ? line.slice(1) : line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return null;
  }

  const definition = value as Record<string, unknown>;
  const name = definition['schema_name'];
  if (typeof name !== 'string' || name === '') {
    return null;
  }
  // MXCP writes `version`; `schema_version` is accepted for files written by other tools.
  const rawVersion = definition['version'] ?? definition['schema_version'];
  const version = typeof rawVersion === 'number' && Number.isSafeInteger(rawVersion) ? rawVersion : DEFAULT_SCHEMA_VERSION;

  return {
    name,
    version,
    entry: { hasRetention: 'retention_days' in definition, retentionValue: definition['retention_days'] },
  };
}
