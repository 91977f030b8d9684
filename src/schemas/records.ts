/** Schemas of POST /records. */

import { Type, type Static } from 'typebox';

import { ProfileQuery } from './common.js';

export const RecordsQuery = Type.Object(
  {
    profile: Type.Optional(ProfileQuery),
  },
  { additionalProperties: false },
);

export type RecordsQuery = Static<typeof RecordsQuery>;

/** One record as `application/json`. Its bytes are appended as sent, and only missing fields are inserted. */
export const AuditRecordBody = Type.Object(
  {},
  {
    additionalProperties: true,
    description:
      "One audit record, a JSON object. `record_id` (a UUID) and the profile's timestamp field (`timestamp` unless " +
      'timestamp_field says otherwise; the current time in ISO 8601 UTC) are inserted when missing; every other byte is kept as sent. ' +
      'A timestamp that is present must be an ISO 8601 date-time or a number of epoch milliseconds (seconds with timestamp_unit: s).',
    examples: [{ schema_name: 'mxcp.endpoints', schema_version: 1, operation_type: 'tool', operation_name: 'get_user', operation_status: 'success' }],
  },
);

/** Several records as `application/x-ndjson`. */
export const NdjsonBody = Type.String({
  description:
    'One JSON object per line (LF or CRLF); blank lines are ignored. Each line is checked and completed like an application/json record. ' +
    'One invalid line rejects the whole request with 400 naming the line, and nothing is appended.',
});

export const RecordsResponse = Type.Object({
  status: Type.Literal('success'),
  message: Type.String({ description: '`Appended N records`.' }),
  records_appended: Type.Integer({ minimum: 1 }),
  path: Type.String({ description: 'Absolute path of the log file that the records were appended to.' }),
});

export type RecordsResponse = Static<typeof RecordsResponse>;
