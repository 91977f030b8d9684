/** Schemas of POST /cleanup. */

import { Type, type Static } from 'typebox';

import { BooleanText, CountMap, ErrorResponse, ProfileQuery } from './common.js';

export const CleanupQuery = Type.Object(
  {
    dryRun: Type.Optional({
      ...BooleanText,
      description: 'true reports what a real run would delete and changes nothing. Default false.',
    }),
    profile: Type.Optional(ProfileQuery),
    archive: Type.Optional(
      Type.Enum(['jsonl', 'parquet', 'duckdb'], {
        description:
          'Write the records to be deleted to one archive file in the archive directory (AUDIT_RETENTION_EXPORT_DIR/archive), synced, before deleting them. jsonl keeps their bytes as they were.',
      }),
    ),
    lockTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 600_000,
        description: "Maximum wait for the writers' lock before each rename, in ms. Default: the profile's lock_timeout_ms, else 5000.",
      }),
    ),
  },
  { additionalProperties: false },
);

export type CleanupQuery = Static<typeof CleanupQuery>;

export const FileDetail = Type.Object({
  path: Type.String({ description: 'File name inside the log directory.' }),
  action: Type.Enum(['unchanged', 'rewritten', 'removed', 'skipped', 'failed'], {
    description: 'What the run did to the file; for a dry run, what a real run would do.',
  }),
  records: Type.Integer({ description: 'Records in the file before the run, expired ones included.' }),
  deleted: Type.Integer(),
  malformed_lines: Type.Integer(),
  bytes_before: Type.Integer(),
  bytes_after: Type.Integer({ description: 'Size after the run. For a dry run of a .gz file, the size before.' }),
  partial_last_line: Type.Boolean({ description: 'The file ends with a line without a line feed, kept as it is.' }),
  lock_wait_ms: Type.Optional(Type.Number({ description: "Time waited for the writers' lock, in ms." })),
  skip_reason: Type.Optional(Type.String({ description: 'Why the file was left untouched, for action skipped.' })),
  from_index: Type.Optional(Type.Boolean({ description: 'Decided from the scan index of an unchanged file, without reading it.' })),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});

export const CleanupDetails = Type.Object(
  {
    profile: Type.String(),
    log_path: Type.String(),
    dry_run: Type.Boolean(),
    now: Type.String({ description: "The run's clock; every cutoff derives from it." }),
    duration_ms: Type.Integer(),
    cutoffs: Type.Record(
      Type.String(),
      Type.Object({
        retention_days: Type.Union([Type.Integer(), Type.Null()], { description: 'null keeps records for good.' }),
        source: Type.Enum(['config', 'schemas_file', 'profile', 'default']),
        cutoff: Type.Union([Type.String(), Type.Null()], { description: 'Records strictly before this instant are expired. null when nothing can expire: retention forever, or a cutoff before the earliest representable date.' }),
      }),
      { description: 'Retention applied to each schema key seen, with its origin and cutoff instant.' },
    ),
    files_scanned: Type.Integer(),
    files_rewritten: Type.Array(Type.String()),
    files_removed: Type.Array(Type.String()),
    files_unchanged: Type.Integer(),
    files_skipped: Type.Array(Type.Object({ path: Type.String(), reason: Type.String() })),
    files_failed: Type.Array(Type.Object({ path: Type.String(), code: Type.String(), message: Type.String() })),
    files_not_processed: Type.Array(Type.String(), { description: 'Files left untouched after the run stopped on a lock timeout.' }),
    bytes_freed: Type.Integer(),
    records_kept: Type.Integer(),
    malformed_lines: Type.Integer({ description: 'Lines kept because they are not JSON objects with a readable timestamp.' }),
    malformed_by_kind: CountMap,
    blank_lines: Type.Integer(),
    partial_last_lines: Type.Array(Type.String()),
    leftover_temporaries_removed: Type.Array(Type.String()),
    schemas_file_ignored_lines: Type.Integer(),
    archive: Type.Union(
      [Type.Object({ path: Type.String(), format: Type.String(), records: Type.Integer(), bytes: Type.Integer() }), Type.Null()],
      { description: 'The archive of the deleted records, when the run archived and deleted any.' },
    ),
    files: Type.Array(FileDetail),
  },
  { description: 'Facts beyond the documented three keys.' },
);

export const CleanupResponse = Type.Object({
  status: Type.Enum(['success', 'dry_run', 'skipped']),
  message: Type.String(),
  deleted_per_schema: CountMap,
  details: Type.Optional(CleanupDetails),
});

/** A run in which some file failed: the error shape plus what the run did to the other files. */
export const CleanupErrorResponse = Type.Object({
  ...ErrorResponse.properties,
  deleted_per_schema: Type.Optional(CountMap),
  details: Type.Optional(CleanupDetails),
});

export type FileDetail = Static<typeof FileDetail>;
export type CleanupDetails = Static<typeof CleanupDetails>;
export type CleanupResponse = Static<typeof CleanupResponse>;
export type CleanupErrorResponse = Static<typeof CleanupErrorResponse>;
