/** Schemas of GET /cleanup/history. */

import { Type, type Static } from 'typebox';

import { CountMap, ProfileQuery } from './common.js';

export const HistoryQuery = Type.Object(
  {
    profile: Type.Optional(ProfileQuery),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: 'Maximum records, newest first. Default 100.' })),
  },
  { additionalProperties: false },
);

export type HistoryQuery = Static<typeof HistoryQuery>;

export const HistoryRecord = Type.Object(
  {
    at: Type.String({ description: "The run's clock." }),
    run_id: Type.String(),
    profile: Type.String(),
    requested_by: Type.String({ description: 'Client address for HTTP, `cli` for the command line.' }),
    status: Type.Enum(['success', 'error']),
    message: Type.String(),
    cutoffs: Type.Record(Type.String(), Type.Object({ retention_days: Type.Union([Type.Integer(), Type.Null()]), cutoff: Type.Union([Type.String(), Type.Null()]) })),
    deleted_per_schema: CountMap,
    deleted: Type.Integer(),
    files_rewritten: Type.Array(Type.String()),
    files_removed: Type.Array(Type.String()),
    bytes_freed: Type.Integer(),
    archive: Type.Union([Type.Object({ path: Type.String(), records: Type.Integer() }), Type.Null()]),
    deleted_sha256: Type.String({ description: 'SHA-256 of the deleted lines, line feeds included, in the order of files and lines.' }),
    duration_ms: Type.Integer(),
  },
  { additionalProperties: true },
);

export const HistoryResponse = Type.Object({
  profile: Type.String(),
  records: Type.Array(HistoryRecord, { description: 'Newest first.' }),
});

export type HistoryRecord = Static<typeof HistoryRecord>;
