/**
 * The SQL of an export: which columns DuckDB's JSON reader reads and with what
 * type, how the timestamp is normalized, and the filters as bound parameters.
 *
 * Field names come from the records, so they are quoted as identifiers and string
 * literals here. Filter values never appear in SQL text: they are named parameters
 * (`$since`, `$operation_type`, …) bound by the caller.
 */

import { readTypeForKinds, type ObservedColumn } from './columns.js';
import { FIELD_FILTERS, type FieldFilterName, type RecordFilters } from './filters.js';

/** Name of the column with the normalized instant (TIMESTAMP, UTC) inside the query. */
const INSTANT = '__audit_retention_instant';
/** Name of the column with the parts of an ISO timestamp inside the query. */
const PARTS = '__audit_retention_parts';
/** Name of the column with the instant that DuckDB's cast to TIMESTAMPTZ reads, inside the query. */
const CAST_INSTANT = '__audit_retention_cast';

/** Output columns that the export adds; a record field of the same name is left out. */
export const TIMESTAMP_COLUMN = 'timestamp';
export const TIMESTAMP_ORIGINAL_COLUMN = 'timestamp_original';
/** Hive partition column of `partition=day`, `date=YYYY-MM-DD`. */
export const PARTITION_COLUMN = 'date';

/**
 * An ISO 8601 timestamp in the forms the scanner accepts: `T` or a space, 0 to 9
 * fraction digits after `.` or `,`, then `Z`, `z`, `±HH:MM`, `±HHMM` or no zone (UTC).
 * RE2 syntax, as DuckDB's regexp functions use it.
 */
const ISO_TIMESTAMP_PATTERN =
  '^(\\d{4})-(\\d{2})-(\\d{2})[T ](\\d{2}):(\\d{2}):(\\d{2})(?:[.,](\\d{1,9}))?(?:[Zz]|([+-])(\\d{2}):?(\\d{2}))?$';
const ISO_TIMESTAMP_GROUPS = ['year', 'month', 'day', 'hour', 'minute', 'second', 'fraction', 'sign', 'offset_hour', 'offset_minute'];

/** A JSON number, as DuckDB's reader prints a numeric field read as VARCHAR (`1700000000000`, `1.7e+12`). */
const JSON_NUMBER_PATTERN = '^-?(0|[1-9]\\d*)(\\.\\d+)?([eE][+-]?\\d+)?$';

/** strftime format of the `timestamp` column: `2026-01-01T04:30:00.123456Z`. */
export const TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ';

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A column as DuckDB's schema detection reports it. */
export interface DetectedColumn {
  name: string;
  type: string;
}

export interface ReadColumn {
  /** The record's key, exactly as written. */
  name: string;
  /** DuckDB type the reader converts the value to. */
  type: string;
}

export interface DroppedField {
  field: string;
  reason: string;
}

export interface ColumnPlan {
  timestampField: string;
  /** The `columns` argument of read_json, in the detected order. */
  readColumns: ReadColumn[];
  /** Fields that cannot be columns of the output, with the reason. */
  droppedFields: DroppedField[];
}

/** Scalar types that stay as detected; any other type is read as VARCHAR or JSON. */
const KEPT_SCALAR_TYPES = new Set(['BOOLEAN', 'TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT', 'UHUGEINT', 'FLOAT', 'DOUBLE', 'VARCHAR']);

/**
 * Maps a detected type to the type the export reads. Objects, arrays (STRUCT, MAP, lists)
 * and mixed values become JSON. Numbers, booleans and strings keep the detected type.
 * Strings that DuckDB recognized as dates, times or UUIDs become VARCHAR, so that their
 * text stays as written.
 */
function readTypeFor(detected: string): string {
  if (KEPT_SCALAR_TYPES.has(detected) || /^DECIMAL\(\d+,\s*\d+\)$/.test(detected)) {
    return detected;
  }
  if (detected === 'JSON' || detected.endsWith(']') || /^(STRUCT|MAP|UNION)\b/.test(detected)) {
    return 'JSON';
  }
  return 'VARCHAR';
}

/**
 * Decides the columns to read from the detected schema. The timestamp field is read
 * as VARCHAR (a string's text, or a number as DuckDB prints it) for normalization.
 *
 * DuckDB column names ignore letter case, so schema detection renames the second of
 * two keys that differ only in case (`A` becomes `A_1`). It names an empty key `C`
 * plus its position. read_json would find no key of either name, so those fields are
 * dropped and reported. Fields named like the columns the export adds are dropped too.
 */
export function planColumns(detected: readonly DetectedColumn[], timestampField: string): ColumnPlan {
  const droppedFields: DroppedField[] = [];
  const readColumns: ReadColumn[] = [];
  const names = detected.map((column) => column.name);
  const added = new Set([TIMESTAMP_COLUMN, TIMESTAMP_ORIGINAL_COLUMN, INSTANT, PARTS, CAST_INSTANT].filter((name) => name !== timestampField));

  for (const [index, column] of detected.entries()) {
    const base = /^(.*)_\d+$/.exec(column.name)?.[1];
    const clash = base === undefined ? undefined : names.find((other) => other !== base && other.toLowerCase() === base.toLowerCase());
    if (clash !== undefined) {
      droppedFields.push({
        field: base!,
        reason: `differs from the field '${clash}' only in letter case, and DuckDB column names ignore case; its values are not exported`,
      });
      continue;
    }
    if (column.name === `C${index}`) {
      droppedFields.push({ field: '', reason: 'a field with an empty name cannot be a DuckDB column; its values are not exported' });
      continue;
    }
    if (added.has(column.name.toLowerCase()) && column.name !== timestampField) {
      droppedFields.push({ field: column.name, reason: `the export adds its own column '${column.name.toLowerCase()}', which replaces this field` });
      continue;
    }
    readColumns.push({ name: column.name, type: column.name === timestampField ? 'VARCHAR' : readTypeFor(column.type) });
  }

  if (!readColumns.some((column) => column.name === timestampField)) {
    readColumns.unshift({ name: timestampField, type: 'VARCHAR' });
  }
  return { timestampField, readColumns, droppedFields };
}

/**
 * Decides the columns to read from the kinds that the export's pass saw per key, in
 * the order in which the keys first appear. Drops the same fields as planColumns: a key
 * that differs from an earlier one only in letter case (DuckDB column names ignore
 * case), the empty key, and keys named like the columns the export adds. The
 * timestamp field is read as VARCHAR for normalization.
 */
export function planObservedColumns(observed: readonly ObservedColumn[], timestampField: string): ColumnPlan {
  const droppedFields: DroppedField[] = [];
  const readColumns: ReadColumn[] = [];
  const added = new Set([TIMESTAMP_COLUMN, TIMESTAMP_ORIGINAL_COLUMN, INSTANT, PARTS, CAST_INSTANT].filter((name) => name !== timestampField));
  // The timestamp field keeps its column even when a key that differs only in case comes first.
  const byLowerCase = new Map<string, string>([[timestampField.toLowerCase(), timestampField]]);

  for (const column of observed) {
    if (column.name === '') {
      droppedFields.push({ field: '', reason: 'a field with an empty name cannot be a DuckDB column; its values are not exported' });
      continue;
    }
    const clash = byLowerCase.get(column.name.toLowerCase());
    if (clash !== undefined && column.name !== timestampField) {
      droppedFields.push({
        field: column.name,
        reason: `differs from the field '${clash}' only in letter case, and DuckDB column names ignore case; its values are not exported`,
      });
      continue;
    }
    byLowerCase.set(column.name.toLowerCase(), column.name);
    if (added.has(column.name.toLowerCase()) && column.name !== timestampField) {
      droppedFields.push({ field: column.name, reason: `the export adds its own column '${column.name.toLowerCase()}', which replaces this field` });
      continue;
    }
    readColumns.push({ name: column.name, type: column.name === timestampField ? 'VARCHAR' : readTypeForKinds(column.kinds) });
  }

  if (!readColumns.some((column) => column.name === timestampField)) {
    readColumns.unshift({ name: timestampField, type: 'VARCHAR' });
  }
  return { timestampField, readColumns, droppedFields };
}

/** Writes the `columns` argument of read_json as a struct literal. */
function columnsLiteral(plan: ColumnPlan): string {
  return `{${plan.readColumns.map((column) => `${quoteLiteral(column.name)}: ${quoteLiteral(column.type)}`).join(', ')}}`;
}

/**
 * SQL that turns the timestamp text into a TIMESTAMP in UTC, truncated to the microsecond:
 * ISO strings through their parts and offset, numbers as epoch ms or s through DECIMAL
 * so that no binary rounding moves an instant. NULL when the text is neither.
 */
function instantExpression(raw: string, timestampUnit: 'ms' | 's'): string {
  const part = (name: string) => `${quoteIdentifier(PARTS)}.${name}`;
  const scale = timestampUnit === 's' ? 1_000_000 : 1000;
  return `TRY(CASE
    WHEN ${part('year')} <> '' THEN
      make_timestamp(CAST(${part('year')} AS BIGINT), CAST(${part('month')} AS BIGINT), CAST(${part('day')} AS BIGINT),
                     CAST(${part('hour')} AS BIGINT), CAST(${part('minute')} AS BIGINT), CAST(${part('second')} AS DOUBLE))
      + to_microseconds(CAST(rpad(left(${part('fraction')}, 6), 6, '0') AS BIGINT))
      - to_minutes(CASE WHEN ${part('sign')} = '' THEN 0
                        ELSE (CAST(${part('offset_hour')} AS BIGINT) * 60 + CAST(${part('offset_minute')} AS BIGINT))
                             * (CASE WHEN ${part('sign')} = '-' THEN -1 ELSE 1 END) END)
    WHEN regexp_full_match(${raw}, ${quoteLiteral(JSON_NUMBER_PATTERN)}) THEN
      make_timestamp(CAST(floor(CAST(${raw} AS DECIMAL(38, 10)) * ${scale}) AS BIGINT))
  END)`;
}

/**
 * SQL that reads an ISO timestamp with DuckDB's cast to TIMESTAMPTZ, as a TIMESTAMP in
 * UTC (the session's time zone is UTC). For a form that the scanner accepts, the cast
 * gives NULL (`t` before the time, `,` before the fraction, `z`) or the instant that
 * instantExpression gives, with fraction digits after the sixth truncated too. DuckDB
 * 1.5 showed this over years 0000 to 9999, offsets, separators and 0 to 9 fraction
 * digits, and a test in export-columns.test.ts checks it. Only text with `-` after the
 * year is cast, so that a number is never taken for a date.
 */
function castInstantExpression(raw: string): string {
  return `CASE WHEN substr(${raw}, 5, 1) = '-' THEN make_timestamp(epoch_us(TRY_CAST(${raw} AS TIMESTAMPTZ))) END`;
}

export interface SelectOptions {
  /** SQL that names the files to read, such as `$files` bound to a list of paths. */
  filesSql: string;
  timestampUnit: 'ms' | 's';
  filters?: RecordFilters | undefined;
  /** Add the `date` column (`YYYY-MM-DD` of the UTC instant) for hive partitioning. */
  partitionByDay?: boolean;
  /** maximum_object_size of the reader, in bytes. */
  maximumObjectSize: number;
}

export interface SelectStatement {
  sql: string;
  /** Values of the named parameters in `sql`, except the ones of `filesSql`. */
  parameters: Record<string, string | bigint>;
}

/** Writes the read_json call over the staging files with the planned columns. */
export function readJsonSql(plan: ColumnPlan, filesSql: string, maximumObjectSize: number): string {
  return `read_json(${filesSql}, format = 'newline_delimited', records = true, columns = ${columnsLiteral(plan)}, maximum_object_size = ${maximumObjectSize})`;
}

/**
 * Builds the SELECT that yields the output rows: every planned field in record order,
 * with `timestamp` (normalized, `2026-01-01T04:30:00.123456Z`) and `timestamp_original`
 * (the text as read) in place of the timestamp field, filtered by `filters`.
 */
export function buildSelect(plan: ColumnPlan, options: SelectOptions): SelectStatement {
  const raw = quoteIdentifier(plan.timestampField);
  const instant = quoteIdentifier(INSTANT);

  const outputs: string[] = [];
  for (const column of plan.readColumns) {
    if (column.name !== plan.timestampField) {
      outputs.push(quoteIdentifier(column.name));
      continue;
    }
    outputs.push(`strftime(${instant}, ${quoteLiteral(TIMESTAMP_FORMAT)}) AS ${quoteIdentifier(TIMESTAMP_COLUMN)}`);
    outputs.push(`${raw} AS ${quoteIdentifier(TIMESTAMP_ORIGINAL_COLUMN)}`);
    if (plan.timestampField !== TIMESTAMP_COLUMN) {
      // A field such as pino's `time` also stays under its own name.
      outputs.push(`${raw} AS ${quoteIdentifier(plan.timestampField)}`);
    }
  }
  if (options.partitionByDay === true) {
    outputs.push(`strftime(${instant}, '%Y-%m-%d') AS ${quoteIdentifier(PARTITION_COLUMN)}`);
  }

  const { conditions, parameters } = buildFilters(plan, options.filters);
  const parts = `regexp_extract(${raw}, ${quoteLiteral(ISO_TIMESTAMP_PATTERN)}, [${ISO_TIMESTAMP_GROUPS.map(quoteLiteral).join(', ')}])`;
  const cast = quoteIdentifier(CAST_INSTANT);
  // The cheap cast decides the usual ISO forms, and the costly regular expression runs only where
  // the cast gives NULL, because DuckDB evaluates a CASE branch and the later COALESCE arguments
  // only for the rows that reach them.
  const sql = [
    `SELECT ${outputs.join(', ')}`,
    `FROM (`,
    `  SELECT *, COALESCE(${cast}, ${instantExpression(raw, options.timestampUnit)}) AS ${instant}`,
    `  FROM (`,
    `    SELECT *, CASE WHEN ${cast} IS NULL THEN ${parts} END AS ${quoteIdentifier(PARTS)}`,
    `    FROM (SELECT *, ${castInstantExpression(raw)} AS ${cast} FROM ${readJsonSql(plan, options.filesSql, options.maximumObjectSize)})`,
    `  )`,
    `)`,
    conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`,
  ].join('\n');
  return { sql, parameters };
}

/** WHERE conditions and their parameters. A filter on a field no record has matches nothing. */
function buildFilters(plan: ColumnPlan, filters: RecordFilters | undefined): { conditions: string[]; parameters: Record<string, string | bigint> } {
  const conditions: string[] = [];
  const parameters: Record<string, string | bigint> = {};
  if (filters === undefined) {
    return { conditions, parameters };
  }

  const instant = quoteIdentifier(INSTANT);
  if (filters.sinceMicros !== undefined) {
    conditions.push(`${instant} >= make_timestamp(CAST($since AS BIGINT))`);
    parameters['since'] = filters.sinceMicros;
  }
  if (filters.untilMicros !== undefined) {
    conditions.push(`${instant} < make_timestamp(CAST($until AS BIGINT))`);
    parameters['until'] = filters.untilMicros;
  }

  for (const [name, value] of Object.entries(filters.fields ?? {}) as [FieldFilterName, string | undefined][]) {
    if (value === undefined) {
      continue;
    }
    const field = FIELD_FILTERS[name];
    const column = plan.readColumns.find((candidate) => candidate.name === field);
    if (column === undefined) {
      conditions.push('FALSE');
      continue;
    }
    // The value compares with the field's text: a JSON column through its string value, other types cast.
    let text = quoteIdentifier(column.name);
    if (column.type === 'JSON') {
      text = `json_extract_string(${text}, '$')`;
    } else if (column.type !== 'VARCHAR') {
      text = `CAST(${text} AS VARCHAR)`;
    }
    conditions.push(`${text} = $${field}`);
    parameters[field] = value;
  }
  return { conditions, parameters };
}
