/** Schemas of POST /export. */

import { Type, type Static } from 'typebox';

import { CountMap, ErrorResponse } from './common.js';

/** A filter value: the exact text a record field must have. */
const FieldValue = (description: string) => Type.String({ minLength: 1, maxLength: 1024, description });

export const ExportBody = Type.Object(
  {
    profile: Type.Optional(
      Type.String({ minLength: 1, description: "Profile of the config file; the config's `profile:` key, `default`, or its only profile when omitted." }),
    ),
    format: Type.Enum(['duckdb', 'parquet', 'csv', 'jsonl'], {
      description: 'duckdb: table audit_logs and view logs. parquet, csv, jsonl: the columns of audit_logs. csv and jsonl are gzip-compressed when the destination ends with .gz.',
    }),
    destination: Type.String({
      minLength: 1,
      maxLength: 1024,
      description:
        'Name below the export directory (AUDIT_RETENTION_EXPORT_DIR), such as audit-20261204.duckdb or archive/audit.parquet; missing directories are created. Absolute paths, .. and symbolic links that lead out are rejected.',
    }),
    partition: Type.Optional(
      Type.Enum(['day'], { description: 'parquet only: hive partitions date=YYYY-MM-DD/ (UTC) under the destination, which is then a directory.' }),
    ),
    since: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Inclusive lower bound of the record instant: 30d, 2h, 10m, 45s before now, or an ISO 8601 instant.' }),
    ),
    until: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Exclusive upper bound of the record instant, an ISO 8601 instant.' })),
    schema: Type.Optional(FieldValue('Records whose schema_name equals this value.')),
    operation_type: Type.Optional(FieldValue('Records whose operation_type equals this value, such as tool.')),
    operation_name: Type.Optional(FieldValue('Records whose operation_name equals this value.')),
    status: Type.Optional(FieldValue('Records whose operation_status equals this value, such as error.')),
    policy: Type.Optional(FieldValue('Records whose policy_decision equals this value, such as deny.')),
    user_id: Type.Optional(FieldValue('Records whose user_id equals this value.')),
    overwrite: Type.Optional(Type.Boolean({ description: 'Replace an existing destination. Default false: an existing destination gets a 409 response.' })),
  },
  { additionalProperties: false },
);

export type ExportBody = Static<typeof ExportBody>;

export const ExportDetails = Type.Object(
  {
    profile: Type.String(),
    format: Type.String(),
    destination: Type.String({ description: 'Absolute path of the destination.' }),
    log_path: Type.String(),
    partition: Type.Union([Type.Literal('day'), Type.Null()]),
    compression: Type.Enum(['gzip', 'none']),
    files_written: Type.Integer({ description: '1, or the number of Parquet files of a partitioned export.' }),
    columns: Type.Array(Type.String(), { description: 'Column names of the output, in order.' }),
    filters: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()]), {
      description: 'Filters applied; since and until as UTC instants with microseconds.',
    }),
    records_read: Type.Integer({ description: 'Valid records in the log, before filters.' }),
    records_filtered_out: Type.Integer(),
    malformed_lines: Type.Integer({ description: 'Lines left out because they are not JSON objects with a readable timestamp, as the cleanup counts them.' }),
    malformed_by_kind: CountMap,
    blank_lines: Type.Integer(),
    partial_last_lines: Type.Array(Type.String(), { description: 'Files whose last line has no line feed yet; that line is left out.' }),
    files_read: Type.Array(Type.String()),
    files_skipped: Type.Array(Type.Object({ path: Type.String(), reason: Type.String() })),
    fields_not_exported: Type.Array(Type.Object({ field: Type.String(), reason: Type.String() }), {
      description: 'Record fields that cannot be DuckDB columns, such as a second field that differs from another only in letter case.',
    }),
    records_repaired: Type.Integer({
      description: 'Records rewritten so that DuckDB reads them: lone UTF-16 surrogate escapes became U+FFFD, duplicate keys kept the last value.',
    }),
    leftover_work_directories_removed: Type.Array(Type.String()),
    timings_ms: Type.Object(
      { staging: Type.Integer(), schema_detection: Type.Integer(), write: Type.Integer(), fsync_and_rename: Type.Integer() },
      { description: 'Where the time went: copying the record lines, DuckDB schema detection over all lines, writing the output, fsync and rename.' },
    ),
    duration_ms: Type.Integer(),
  },
  { description: 'Facts beyond the documented five keys.' },
);

export const ExportResponse = Type.Object({
  status: Type.Literal('success'),
  message: Type.String(),
  records_exported: Type.Integer({ minimum: 0 }),
  path: Type.String({ description: 'The destination, relative to the export directory.' }),
  bytes: Type.Integer({ minimum: 0, description: 'Size of the file, or of all files of a partitioned export.' }),
  details: Type.Optional(ExportDetails),
});

export type ExportResponse = Static<typeof ExportResponse>;

export { ErrorResponse };
