/** Schemas of GET /stats. */

import { Type, type Static } from 'typebox';

import { CountMap, ProfileQuery } from './common.js';

const Instant = Type.Union([Type.String(), Type.Null()], { description: 'ISO 8601 UTC with milliseconds; null when there is no record.' });

export const StatsQuery = Type.Object({ profile: Type.Optional(ProfileQuery) }, { additionalProperties: false });

export type StatsQuery = Static<typeof StatsQuery>;

export const FileStats = Type.Object({
  path: Type.String({ description: 'File name inside the log directory.' }),
  bytes: Type.Integer({ description: 'Size on disk; compressed size for .gz.' }),
  records: Type.Integer(),
  earliest_timestamp: Instant,
  latest_timestamp: Instant,
  active: Type.Boolean({ description: 'The file a writer appends to now.' }),
  malformed_lines: Type.Integer(),
  partial_last_line: Type.Boolean(),
  gzip: Type.Boolean(),
});

export const LastCleanup = Type.Object({
  at: Type.String(),
  status: Type.String(),
  deleted: Type.Integer(),
});

export const StatsResponse = Type.Object({
  profile: Type.String(),
  enabled: Type.Boolean({ description: 'false when audit is not enabled for the profile; the counts are then zero.' }),
  now: Type.String({ description: 'The clock of the response; expired counts derive from it.' }),
  total_records: Type.Integer({ description: 'Records: JSON objects with a readable timestamp. Malformed and blank lines excluded.' }),
  total_bytes: Type.Integer({ description: 'Sum of file sizes on disk.' }),
  malformed_lines: Type.Integer(),
  malformed_by_kind: CountMap,
  blank_lines: Type.Integer(),
  by_schema: CountMap,
  bytes_by_schema: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description: 'Bytes of the record lines of each schema key.' }),
  by_type: CountMap,
  by_status: CountMap,
  by_policy: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description: 'Records without a policy decision are left out.' }),
  earliest_timestamp: Instant,
  latest_timestamp: Instant,
  expired_per_schema: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
    description: 'What a dry run at the same instant would report as deleted_per_schema.',
  }),
  files: Type.Array(FileStats),
  files_skipped: Type.Array(Type.Object({ path: Type.String(), reason: Type.String() })),
  size_warning: Type.Boolean(),
  size_warning_bytes: Type.Integer(),
  last_cleanup: Type.Union([LastCleanup, Type.Null()], { description: 'null before the first cleanup.' }),
  files_scanned: Type.Integer({ description: 'Files read in full or in part for this response; 0 when the scan index alone sufficed.' }),
  duration_ms: Type.Number(),
});

export type FileStats = Static<typeof FileStats>;
export type LastCleanup = Static<typeof LastCleanup>;
export type StatsResponse = Static<typeof StatsResponse>;
